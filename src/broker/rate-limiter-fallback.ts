import type { Logger } from 'pino'
import type { RateLimiter } from '../services/ports.js'
import { Fallback } from './fallback.js'
import { MemoryRateLimiter } from './memory-stores.js'

/**
 * Abuse limits (login, registration, tickets) shared through Redis, and counted by this instance
 * alone while Redis is unavailable: a limit then holds per instance (spread over N instances an
 * attacker gets N budgets, from a fresh window), which is better than refusing every login.
 */
export class FallbackRateLimiter implements RateLimiter {
  private readonly local = new MemoryRateLimiter()
  private readonly fallback: Fallback

  constructor(
    private readonly shared: RateLimiter,
    logger: Logger,
  ) {
    this.fallback = new Fallback(logger, 'abuse limits (login, registration, tickets)')
  }

  hit(key: string, windowSec: number) {
    return this.fallback.run(
      () => this.shared.hit(key, windowSec),
      () => this.local.hit(key, windowSec),
    )
  }

  // A hit counted locally and released once Redis is back takes one from the shared window
  // instead (never below zero): at worst one more attempt, once per outage.
  release(key: string) {
    return this.fallback.run(
      () => this.shared.release(key),
      () => this.local.release(key),
    )
  }

  async reset(key: string) {
    // Both: failures counted locally during an earlier outage must not count against the next one.
    await this.local.reset(key)
    await this.fallback.run(
      () => this.shared.reset(key),
      () => undefined,
    )
  }

  acquireHold(key: string, holdMs: number, nowMs: number) {
    return this.fallback.run(
      () => this.shared.acquireHold(key, holdMs, nowMs),
      () => this.local.acquireHold(key, holdMs, nowMs),
    )
  }
}
