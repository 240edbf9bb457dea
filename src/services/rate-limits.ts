import { type Quota, RateLimitedError } from '../errors.js'
import type { RateLimiter } from './ports.js'

/**
 * Counts one attempt on `key` and returns what is left of the window, or throws 429 (with
 * Retry-After and the quota) when the window already held `max` (the refused attempt is not
 * counted). Counting first and deciding on the count it returns is atomic, so a burst of parallel
 * attempts cannot all pass a check made before any was counted.
 */
export async function consume(
  limiter: RateLimiter,
  key: string,
  max: number,
  windowSec: number,
): Promise<Quota> {
  const { count, resetInSec } = await limiter.hit(key, windowSec)
  const reset = Math.max(1, resetInSec)
  if (count > max) {
    await limiter.release(key)
    throw new RateLimitedError(reset, { limit: max, remaining: 0, resetInSec: reset })
  }
  return { limit: max, remaining: max - count, resetInSec: reset }
}
