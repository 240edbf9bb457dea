/**
 * The application's error family, thrown by services, store and auth and rendered by each
 * transport in one place: problem+json in `http/problem.ts`, `error` frames in `ws/`. Nothing here
 * names a transport: a field is a plain name (`content`); HTTP adds `/body/…` when it renders.
 *
 * This module imports nothing, so every layer may use it.
 */
export interface FieldError {
  /** The input field, as the client named it (`content`, `member_ids`, `cursor`). */
  field: string
  message: string
}

/** Every code an AppError can carry; `protocol/errors.ts` checks they are all in the wire list. */
export type AppErrorCode =
  | 'not_found'
  | 'conflict'
  | 'validation_failed'
  | 'unauthorized'
  | 'forbidden'
  | 'rate_limited'
  | 'unavailable'
  /** A request body that is not JSON (or not UTF-8). */
  | 'invalid_json'
  /** A file over the size limit (HTTP 413). */
  | 'too_large'
  /** A file type the server does not accept (HTTP 415). */
  | 'unsupported_media_type'
  /** The user's storage quota would be exceeded (HTTP 413). */
  | 'quota_exceeded'
  /** A block between two users refuses it (HTTP 403): see docs/moderation.md. */
  | 'blocked'
  /** An operator suspended the account: it cannot sign in or use its tokens until unsuspended (HTTP 401). */
  | 'account_suspended'
  /** The user is banned from the group: cannot be added back until unbanned (HTTP 409). */
  | 'banned'

export abstract class AppError extends Error {
  abstract readonly status: number
  abstract readonly code: AppErrorCode
  readonly errors?: FieldError[]
}

export class NotFoundError extends AppError {
  readonly status = 404
  readonly code = 'not_found'
  constructor(what = 'resource') {
    super(`${what} not found`)
  }
}

export class ConflictError extends AppError {
  readonly status = 409
  readonly code = 'conflict'
}

export class ValidationError extends AppError {
  readonly status = 422
  readonly code = 'validation_failed'
  override readonly errors: FieldError[]
  constructor(errors: FieldError[], message = errors.map((e) => `${e.field}: ${e.message}`).join('; ')) {
    super(message)
    this.errors = errors
  }
}

/** One field's problem, the common case. */
export const invalid = (field: string, message: string): ValidationError =>
  new ValidationError([{ field, message }])

export class UnauthorizedError extends AppError {
  readonly status = 401
  readonly code = 'unauthorized'
  constructor(message = 'missing or invalid credentials') {
    super(message)
  }
}

export class ForbiddenError extends AppError {
  readonly status = 403
  readonly code = 'forbidden'
}

/**
 * A block between the two users refuses the action: a new direct conversation, a message in
 * their direct conversation (closed both ways while either blocks the other), or adding a user
 * who blocked the actor to a group. A 403 of its own type so clients can say why.
 */
export class BlockedError extends AppError {
  readonly status = 403
  readonly code = 'blocked'
}

/**
 * The account is suspended. 401 like any refused credential (every authenticated operation
 * documents it), with a type of its own so a client tells it from an expired token.
 */
export class AccountSuspendedError extends AppError {
  readonly status = 401
  readonly code = 'account_suspended'
  constructor(message = 'the account is suspended') {
    super(message)
  }
}

/** Adding (or re-adding) a user a group has banned. */
export class BannedError extends AppError {
  readonly status = 409
  readonly code = 'banned'
  constructor(message = 'the user is banned from this group') {
    super(message)
  }
}

/** A fixed-window limit as clients are told it (the RateLimit-* headers). */
export interface Quota {
  limit: number
  remaining: number
  resetInSec: number
}

/** An upload larger than allowed (or than it was declared). */
export class TooLargeError extends AppError {
  readonly status = 413
  readonly code = 'too_large'
}

/** A content type outside the allow-list. */
export class UnsupportedMediaTypeError extends AppError {
  readonly status = 415
  readonly code = 'unsupported_media_type'
}

/** What the user already stores plus this upload would exceed their quota. */
export class QuotaExceededError extends AppError {
  readonly status = 413
  readonly code = 'quota_exceeded'
}

export class RateLimitedError extends AppError {
  readonly status = 429
  readonly code = 'rate_limited'
  constructor(
    readonly retryAfterSec: number,
    /** The window that refused, when the limit is one (`services/rate-limits.ts`). */
    readonly quota?: Quota,
  ) {
    super(`too many requests; retry after ${retryAfterSec} s`)
  }
}

/** A backing service (database, Redis) is down: the client should retry after `retryAfterSec`. */
export class UnavailableError extends AppError {
  readonly status = 503
  readonly code = 'unavailable'
  constructor(
    message = 'a backing service is unavailable; retry shortly',
    readonly retryAfterSec = 5,
  ) {
    super(message)
  }
}

/**
 * The messages ioredis rejects a command with when it cannot reach Redis. It has no error codes
 * for these, so the texts are matched; test/conformance/redis-fallback.test.ts produces each one
 * from a real server and a real client, so an ioredis upgrade that rewords one fails there.
 */
const REDIS_UNAVAILABLE_MESSAGES = new Set([
  // Not connected, and the offline queue is off (broker/redis.ts): commands fail at once.
  "Stream isn't writeable and enableOfflineQueue options is false",
  // The connection was closed for good (quit, or the retry strategy gave up).
  'Connection is closed.',
  // A `commandTimeout` elapsed.
  'Command timed out',
  // Redis Cluster: not connected to the cluster (yet, or any more), offline queue off.
  "Cluster isn't ready and enableOfflineQueue options is false",
  'None of startup nodes is available',
  'Cluster is disconnected.',
  'Failed to refresh slots cache.',
])

/**
 * Redis Cluster, by how the message starts: a command for a failed primary, retried until the
 * redirections ran out, and a cluster that has slots without a primary (CLUSTERDOWN) or is
 * moving one (TRYAGAIN).
 */
const REDIS_UNAVAILABLE_PREFIXES = ['Too many Cluster redirections', 'CLUSTERDOWN', 'TRYAGAIN']

/**
 * True when `err` says Redis could not be reached, as opposed to Redis refusing a command (a
 * script error, a wrong type), which is a bug and stays a 500.
 */
export function isRedisUnavailable(err: unknown): boolean {
  let e: unknown = err
  for (let i = 0; i < 3 && e instanceof Error; i++) {
    // Commands written before the connection dropped, failed after `maxRetriesPerRequest` reconnects.
    if (e.name === 'MaxRetriesPerRequestError' || REDIS_UNAVAILABLE_MESSAGES.has(e.message)) return true
    const message = e.message
    if (REDIS_UNAVAILABLE_PREFIXES.some((p) => message.startsWith(p))) return true
    e = e.cause
  }
  return false
}

/**
 * The error as the application sees it: itself when it is an AppError, an UnavailableError when
 * it says the database or Redis is unreachable, undefined otherwise (a bug: transports answer 500/internal).
 */
export function asAppError(err: unknown): AppError | undefined {
  if (err instanceof AppError) return err
  if (isDatabaseUnavailable(err)) return new UnavailableError('the database is unavailable; retry shortly')
  if (isRedisUnavailable(err)) return new UnavailableError('redis is unavailable; retry shortly')
  return undefined
}

/** The PostgreSQL error code (SQLSTATE) as both drivers report it; Drizzle wraps it in `cause`. */
export function pgCode(err: unknown): string | undefined {
  let e: unknown = err
  for (let i = 0; i < 3 && e && typeof e === 'object'; i++) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return code
    e = (e as { cause?: unknown }).cause
  }
  return undefined
}

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'CONNECT_TIMEOUT',
  'CONNECTION_CLOSED',
  'CONNECTION_ENDED',
  'CONNECTION_DESTROYED',
])

/** Connection refused, reset, admin shutdown, cannot connect now: the database is unavailable. */
export function isDatabaseUnavailable(err: unknown): boolean {
  const code = pgCode(err)
  if (code && (code.startsWith('08') || code === '57P01' || code === '57P03')) return true
  let e: unknown = err
  for (let i = 0; i < 3 && e && typeof e === 'object'; i++) {
    const c = (e as { code?: unknown }).code
    if (typeof c === 'string' && CONNECTION_CODES.has(c)) return true
    e = (e as { cause?: unknown }).cause
  }
  return false
}
