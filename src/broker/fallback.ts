import type { Logger } from 'pino'
import { isRedisUnavailable } from './redis-errors.js'

/**
 * Runs each operation on Redis first and, when Redis is unavailable, on this instance's own state
 * instead. There is no "down" flag to trust or to reset: every call tries Redis (a disconnected
 * client refuses at once, the offline queue is off), so the first call after Redis is back uses it
 * again. The switch is logged once each way, not once per request.
 */
export class Fallback {
  private degraded = false

  /** `capability` names what falls back, in the log lines ("abuse limits", "presence"). */
  constructor(
    private readonly logger: Logger,
    private readonly capability: string,
  ) {}

  async run<T>(shared: () => Promise<T>, local: () => T | Promise<T>): Promise<T> {
    let result: T
    try {
      result = await shared()
    } catch (err) {
      if (!isRedisUnavailable(err)) throw err
      if (!this.degraded) {
        this.degraded = true
        this.logger.warn(
          { reason: (err as Error).message },
          `redis unavailable: ${this.capability} count on this instance alone until it answers`,
        )
      }
      return local()
    }
    if (this.degraded) {
      this.degraded = false
      this.logger.warn(`redis available again: ${this.capability} shared across instances again`)
    }
    return result
  }
}
