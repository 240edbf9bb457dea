import type { Logger } from 'pino'
import type { ConnectionLeases } from '../services/ports.js'
import { Fallback } from './fallback.js'
import { MemoryConnectionLeases } from './memory-stores.js'
import type { RedisClient } from './redis-client.js'

type Key = (name: string) => string

// Redis' own clock (TIME), not the instances': leases written by instances whose clocks differ
// expire alike. One key per user, so the script runs on one shard of a cluster.
const NOW = `local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)`

// Drops expired leases, then takes one unless the user is at the limit.
const ACQUIRE_LEASE = `${NOW}
local lease = tonumber(ARGV[3])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if not redis.call('ZSCORE', KEYS[1], ARGV[2]) and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + lease, ARGV[2])
redis.call('PEXPIRE', KEYS[1], lease)
return 1`

// Extends the leases of the sockets listed (ARGV[2..]), re-adding any Redis lost (a restart).
const RENEW_LEASES = `${NOW}
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], now + lease, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], lease)
return 0`

/**
 * Connection leases in Redis: per user a sorted set of socket ids scored by when their lease
 * ends. Acquiring counts the live ones and adds one in one script, so the limit is exact across
 * instances; this instance renews its sockets' leases every third of a lease, so a dead instance's
 * leases end within WS_CONNECTION_LEASE_MS.
 */
export class RedisConnectionLeases implements ConnectionLeases {
  /** This instance's leases (socket id → user id): what the heartbeat renews. */
  private readonly held = new Map<string, string>()
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly redis: RedisClient,
    private readonly key: Key,
    private readonly leaseMs: number,
  ) {
    this.timer = setInterval(() => void this.renew().catch(() => undefined), leaseMs / 3)
    this.timer.unref()
  }

  async acquire(userId: string, socketId: string, limit: number): Promise<boolean> {
    const taken = await this.redis.eval(
      ACQUIRE_LEASE,
      1,
      this.key(`conns:${userId}`),
      limit,
      socketId,
      this.leaseMs,
    )
    if (taken === 1) this.held.set(socketId, userId)
    return taken === 1
  }

  /** Counts a socket admitted without Redis (during an outage): renewed, so counted, once Redis is back. */
  adopt(userId: string, socketId: string): void {
    this.held.set(socketId, userId)
  }

  async release(userId: string, socketId: string): Promise<void> {
    this.held.delete(socketId)
    await this.redis.zrem(this.key(`conns:${userId}`), socketId)
  }

  /** Extends every lease this instance holds (one script per user, all sent before the first reply). */
  async renew(): Promise<void> {
    const byUser = new Map<string, string[]>()
    for (const [socketId, userId] of this.held) byUser.set(userId, [...(byUser.get(userId) ?? []), socketId])
    await Promise.all(
      [...byUser].map(([userId, sockets]) =>
        this.redis.eval(RENEW_LEASES, 1, this.key(`conns:${userId}`), this.leaseMs, ...sockets),
      ),
    )
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
  }
}

/**
 * Leases shared through Redis and, while Redis is unavailable, the limit per instance: each
 * instance admits up to the limit on its own (spread over N instances a user gets up to N times
 * the limit until Redis answers), which is better than refusing every socket. Sockets admitted
 * meanwhile are renewed into Redis once it is back (at the next renewal, or at once when the
 * broker reports the reconnect) and count against the shared limit from then on.
 */
export class FallbackConnectionLeases implements ConnectionLeases {
  /** Every socket of this instance, whether or not Redis answered: the per-instance limit. */
  private readonly local = new MemoryConnectionLeases()
  private readonly fallback: Fallback

  constructor(
    private readonly shared: RedisConnectionLeases,
    broker: { onReconnect?(handler: () => void): void },
    logger: Logger,
  ) {
    this.fallback = new Fallback(logger, 'the per-user socket limit')
    broker.onReconnect?.(() => void this.shared.renew().catch(() => undefined))
  }

  async acquire(userId: string, socketId: string, limit: number): Promise<boolean> {
    // This instance alone at the limit: so is the user everywhere.
    if (!(await this.local.acquire(userId, socketId, limit))) return false
    const taken = await this.fallback
      .run(
        () => this.shared.acquire(userId, socketId, limit),
        () => {
          this.shared.adopt(userId, socketId)
          return true
        },
      )
      .catch((err: unknown) => {
        void this.local.release(userId, socketId)
        throw err
      })
    if (!taken) await this.local.release(userId, socketId)
    return taken
  }

  async release(userId: string, socketId: string): Promise<void> {
    await this.local.release(userId, socketId)
    // Not given back in Redis (unavailable): it ends with its lease, as it is no longer renewed.
    await this.fallback.run(
      () => this.shared.release(userId, socketId),
      () => undefined,
    )
  }

  close(): Promise<void> {
    return this.shared.close()
  }
}
