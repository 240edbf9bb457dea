import { RateLimitedError } from '../errors.js'
import type { RateLimiter } from './ports.js'

/**
 * Counts one attempt on `key`, or throws 429 (with Retry-After) when the window already held
 * `max` (the refused attempt is not counted). Counting first and deciding on the count it returns
 * is atomic, so a burst of parallel attempts cannot all pass a check made before any was counted.
 */
export async function consume(
  limiter: RateLimiter,
  key: string,
  max: number,
  windowSec: number,
): Promise<void> {
  const { count, resetInSec } = await limiter.hit(key, windowSec)
  if (count > max) {
    await limiter.release(key)
    throw new RateLimitedError(Math.max(1, resetInSec))
  }
}
