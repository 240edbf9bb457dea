import { ValidationError } from '../services/errors.js'

/** Opaque page cursors: base64url JSON, so clients treat them as tokens, not as numbers to edit. */
export const encodeCursor = (value: Record<string, string | number>): string =>
  Buffer.from(JSON.stringify(value)).toString('base64url')

export function decodeCursor(cursor: string, path: string): Record<string, string | number> {
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
  throw new ValidationError([{ path, message: 'is not a valid cursor' }])
}
