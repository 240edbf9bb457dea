import { isRedisUnavailable, UnavailableError } from '../errors.js'

/**
 * How long a client should wait before retrying something that needs Redis. ioredis retries the
 * connection at most every 2 s (`broker/redis.ts`), so a Redis that is back is in use again well
 * within this.
 */
export const REDIS_RETRY_AFTER_SEC = 5

/** Recognised in `errors.ts` (`asAppError`), where every transport maps errors. */
export { isRedisUnavailable }

/** A 503 with Retry-After, for what cannot work without Redis. */
export class RedisUnavailableError extends UnavailableError {
  constructor(message = 'redis is unavailable; retry shortly', cause?: unknown) {
    super(message, REDIS_RETRY_AFTER_SEC)
    if (cause !== undefined) this.cause = cause
  }
}
