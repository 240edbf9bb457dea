import type { Problem } from './rest-types.js'

/** The closed list of codes an `error` frame carries (docs/asyncapi.yaml), plus the SDK's own. */
export type ErrorCode =
  | 'not_found'
  | 'conflict'
  | 'validation_failed'
  | 'unauthorized'
  | 'forbidden'
  | 'rate_limited'
  | 'unavailable'
  | 'internal'
  | 'invalid_frame'
  | 'invalid_json'
  | 'unknown_type'
  /** The server could not be reached, or the connection broke mid-request. */
  | 'network'
  /** The request got no answer in time. */
  | 'timeout'
  /** No session, or it cannot be refreshed (expired, revoked, refresh token reused). */
  | 'session_expired'
  | (string & {})

/** Every error the SDK surfaces. `code` is stable; `problem` is the server's document, if any. */
export class ChatError extends Error {
  override readonly name: string = 'ChatError'
  constructor(
    readonly code: ErrorCode,
    message: string,
    /** HTTP status, when the error came from a response. */
    readonly status?: number,
    readonly problem?: Problem,
  ) {
    super(message)
  }

  /** Worth retrying unchanged later: the network, a timeout, 503, 429, 5xx. */
  get transient(): boolean {
    return (
      this.code === 'network' ||
      this.code === 'timeout' ||
      this.code === 'unavailable' ||
      this.code === 'rate_limited' ||
      (this.status !== undefined && this.status >= 500)
    )
  }
}

/** A non-2xx HTTP response with its RFC 9457 problem document. */
export class ProblemError extends ChatError {
  override readonly name = 'ProblemError'
  constructor(
    override readonly problem: Problem,
    /** Seconds from Retry-After, when the server sent it. */
    readonly retryAfter?: number,
  ) {
    super(problemCode(problem), problem.detail ?? problem.title, problem.status, problem)
  }
}

/** `/problems/not_found` → `not_found`; falls back to the status. */
function problemCode(p: Problem): ErrorCode {
  const m = /\/problems\/([a-z_]+)$/.exec(p.type)
  if (m?.[1]) return m[1]
  if (p.status === 401) return 'unauthorized'
  if (p.status === 403) return 'forbidden'
  if (p.status === 404) return 'not_found'
  if (p.status === 429) return 'rate_limited'
  if (p.status === 503) return 'unavailable'
  return p.status >= 500 ? 'internal' : 'validation_failed'
}
