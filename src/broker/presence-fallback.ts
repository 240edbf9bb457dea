import type { Logger } from 'pino'
import type { Presence } from '../services/ports.js'
import { Fallback } from './fallback.js'
import { MemoryPresence } from './memory-stores.js'
import { isRedisUnavailable } from './redis-errors.js'

/** A shared presence that can be told this instance's socket counts as they are now. */
export interface RestorablePresence extends Presence {
  /** Sets this instance's count for each user (0 removes it) and marks the instance alive. */
  restore(counts: ReadonlyMap<string, number>): Promise<void>
}

/**
 * Presence shared through Redis, counted by this instance alone while Redis is unavailable, and
 * put right when Redis is back.
 *
 * While Redis is down a socket still opens: `connections` (the per-user socket limit) and
 * `onlineAmong` answer from this instance's own counts, so peers on the same instance still see
 * each other come and go; peers on other instances do not (presence events cross instances
 * through Redis too).
 *
 * When Redis is back its counts for this instance may be wrong: increments and decrements made
 * meanwhile never reached it, or a restarted Redis lost everything. So this instance keeps its
 * own counts all the time and, on every reconnect, writes them over whatever Redis holds.
 */
export class FallbackPresence implements Presence {
  /** Sockets per user on this instance, kept whether or not Redis answers. */
  private readonly local = new MemoryPresence()
  /** Users whose count in Redis may be wrong because a write to it failed. */
  private readonly unsynced = new Set<string>()
  private readonly fallback: Fallback
  private readonly restoredWaiters: (() => void)[] = []

  /** `broker` says when Redis is back (its `onReconnect`); the counts are written back then. */
  constructor(
    private readonly shared: RestorablePresence,
    broker: { onReconnect(handler: () => void): void },
    private readonly logger: Logger,
  ) {
    this.fallback = new Fallback(logger, 'presence and the per-user socket limit')
    broker.onReconnect(() => this.restore())
  }

  async connect(userId: string): Promise<boolean> {
    const first = await this.local.connect(userId)
    return this.fallback.run(
      () => this.shared.connect(userId),
      () => {
        this.unsynced.add(userId)
        return first
      },
    )
  }

  async disconnect(userId: string): Promise<boolean> {
    const last = await this.local.disconnect(userId)
    return this.fallback.run(
      () => this.shared.disconnect(userId),
      () => {
        this.unsynced.add(userId)
        return last
      },
    )
  }

  onlineAmong(userIds: string[]): Promise<Set<string>> {
    return this.fallback.run(
      () => this.shared.onlineAmong(userIds),
      () => this.local.onlineAmong(userIds),
    )
  }

  connections(userId: string): Promise<number> {
    return this.fallback.run(
      () => this.shared.connections(userId),
      () => this.local.connections(userId),
    )
  }

  close(): Promise<void> {
    return this.shared.close()
  }

  /** Resolves once this instance's counts were next written back to Redis (for tests). */
  nextRestore(): Promise<void> {
    return new Promise((resolve) => this.restoredWaiters.push(resolve))
  }

  private restore(): void {
    // Read and sent in one go, in the order Redis applies them (see RedisPresence.restore): an
    // increment sent before this point is in `counts` and reaches Redis before these writes,
    // one sent after is not and reaches it after them. Either way it is counted once.
    const counts = this.local.snapshot()
    for (const userId of this.unsynced) if (!counts.has(userId)) counts.set(userId, 0)
    this.unsynced.clear()
    this.shared.restore(counts).then(
      () => {
        this.logger.info({ users: counts.size }, 'presence: counts written back to redis')
        for (const resolve of this.restoredWaiters.splice(0)) resolve()
      },
      (err: unknown) => {
        // The next reconnect tries again; until then the users whose zero was not written stay listed.
        for (const [userId, n] of counts) if (n === 0) this.unsynced.add(userId)
        if (isRedisUnavailable(err))
          this.logger.warn({ err }, 'presence: write-back failed, redis unavailable')
        else this.logger.error({ err }, 'presence: write-back failed')
      },
    )
  }
}
