import { RateLimitedError } from './errors.js'

/**
 * Fixed-window counters for abuse limits (login failures, registrations, tickets). The memory
 * implementation serves one instance; `broker/redis-stores.ts` shares counts across instances.
 */
export interface RateLimiter {
  /** Counts one hit on `key` and returns how many the window holds now and when it resets. Atomic. */
  hit(key: string, windowSec: number): Promise<{ count: number; resetInSec: number }>
  /** Takes one hit back (an attempt counted up front that turned out not to count). Never below zero. */
  release(key: string): Promise<void>
  reset(key: string): Promise<void>
}

export class MemoryRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>()

  async hit(key: string, windowSec: number) {
    const now = Date.now()
    let w = this.windows.get(key)
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + windowSec * 1000 }
      this.windows.set(key, w)
      if (this.windows.size > 100_000) this.sweep(now)
    }
    w.count++
    return { count: w.count, resetInSec: Math.ceil((w.resetAt - now) / 1000) }
  }

  async release(key: string) {
    const w = this.windows.get(key)
    if (w && w.count > 0) w.count--
  }

  async reset(key: string) {
    this.windows.delete(key)
  }

  private sweep(now: number) {
    for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k)
  }
}

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
