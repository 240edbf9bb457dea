/** PostgreSQL error codes as both drivers report them (postgres.js and PGlite both set `code`). */
function pgCode(err: unknown): string | undefined {
  let e: unknown = err
  // Drizzle wraps driver errors in DrizzleQueryError with the original as `cause`.
  for (let i = 0; i < 3 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

export const isUniqueViolation = (err: unknown): boolean => pgCode(err) === '23505'
export const isForeignKeyViolation = (err: unknown): boolean => pgCode(err) === '23503'

/** Connection refused, reset, admin shutdown, cannot connect now: the database is unavailable. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = pgCode(err)
  if (code && (code.startsWith('08') || code === '57P01' || code === '57P03')) return true
  let e: unknown = err
  for (let i = 0; i < 3 && e && typeof e === 'object'; i++) {
    const c = (e as { code?: unknown }).code
    if (
      c === 'ECONNREFUSED' ||
      c === 'ECONNRESET' ||
      c === 'CONNECT_TIMEOUT' ||
      c === 'CONNECTION_CLOSED' ||
      c === 'CONNECTION_ENDED' ||
      c === 'CONNECTION_DESTROYED'
    )
      return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}
