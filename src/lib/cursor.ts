import { invalid } from '../errors.js'

/** Opaque page cursors: base64url JSON, so clients treat them as tokens, not as numbers to edit. */
export const encodeCursor = (value: Record<string, string | number>): string =>
  Buffer.from(JSON.stringify(value)).toString('base64url')

/** The cursor's fields; anything that is not a flat object of strings and numbers is a 422 on `field`. */
export function decodeCursor(cursor: string, field = 'cursor'): Record<string, string | number> {
  try {
    const value: unknown = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
    if (value && typeof value === 'object' && !Array.isArray(value)) {
      const entries = Object.entries(value)
      if (entries.every(([, v]) => typeof v === 'string' || typeof v === 'number')) {
        return Object.fromEntries(entries) as Record<string, string | number>
      }
    }
  } catch {
    // fall through to the validation error
  }
  throw invalid(field, 'is not a valid cursor')
}
