/**
 * Typed errors thrown by services. They are mapped to HTTP problem+json in
 * `http/problem.ts` and to WebSocket `error` frames in `ws/errors.ts`, nowhere else.
 */
export interface FieldError {
  /** JSON pointer into the request, e.g. `/body/password`. */
  path: string
  message: string
}

export abstract class AppError extends Error {
  abstract readonly status: number
  abstract readonly code: string
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
  constructor(errors: FieldError[], message = errors.map((e) => `${e.path}: ${e.message}`).join('; ')) {
    super(message)
    this.errors = errors
  }
}

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

export class RateLimitedError extends AppError {
  readonly status = 429
  readonly code = 'rate_limited'
  constructor(readonly retryAfterSec: number) {
    super(`too many requests; retry after ${retryAfterSec} s`)
  }
}

export class UnavailableError extends AppError {
  readonly status = 503
  readonly code = 'unavailable'
  constructor(message = 'a backing service is unavailable; retry shortly') {
    super(message)
  }
}
