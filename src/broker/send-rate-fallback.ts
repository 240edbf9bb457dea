import type { Logger } from 'pino'
import type { SendRate } from '../services/ports.js'
import { Fallback } from './fallback.js'
import { MemorySendRate } from './memory-stores.js'

/**
 * The per-user message rate shared through Redis, and kept by this instance alone while Redis is
 * unavailable: a user's sockets on one instance share a bucket, sockets on different instances
 * do not. Refusing every message instead would turn a Redis outage into a chat outage.
 */
export class FallbackSendRate implements SendRate {
  private readonly local: MemorySendRate
  private readonly fallback: Fallback

  constructor(
    private readonly shared: SendRate,
    perSec: number,
    burst: number,
    logger: Logger,
  ) {
    this.local = new MemorySendRate(perSec, burst)
    this.fallback = new Fallback(logger, 'message rate limits')
  }

  take(userId: string): Promise<boolean> {
    return this.fallback.run(
      () => this.shared.take(userId),
      () => this.local.take(userId),
    )
  }
}
