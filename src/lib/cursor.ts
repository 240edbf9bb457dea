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

/** The id a keyset cursor holds (`{id}`); anything else is a forged cursor, a 422 before it reaches the database. */
export function decodeIdCursor(cursor: string | undefined, isId: (s: string) => boolean): string | undefined {
  if (cursor === undefined) return undefined
  const { id } = decodeCursor(cursor)
  if (typeof id !== 'string' || !isId(id)) throw invalid('cursor', 'is not a valid cursor')
  return id
}

/** A page of `limit` items out of `rows` (fetched with `limit + 1`), with the cursor of the next one. */
export function idPage<R, V>(rows: R[], limit: number, id: (r: R) => string, view: (r: R) => V) {
  const page = rows.slice(0, limit)
  const last = page.at(-1)
  return {
    items: page.map(view),
    next_cursor: rows.length > limit && last !== undefined ? encodeCursor({ id: id(last) }) : null,
  }
}
