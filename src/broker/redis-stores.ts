import { newTicket, type TicketStore } from '../auth/tickets.js'
import type { RateLimiter, SendRate } from '../services/ports.js'
import type { RestorablePresence } from './presence-fallback.js'
import type { RedisClient } from './redis-client.js'

type Key = (name: string) => string

/** Tickets shared by every instance: a ticket issued on one is redeemed once on any (GETDEL). */
export class RedisTicketStore implements TicketStore {
  constructor(
    private readonly redis: RedisClient,
    private readonly key: Key,
  ) {}

  async issue(userId: string, ttlSec: number): Promise<string> {
    const ticket = newTicket()
    await this.redis.set(this.key(`ticket:${ticket}`), userId, 'EX', ttlSec)
    return ticket
  }

  async redeem(ticket: string): Promise<string | undefined> {
    return (await this.redis.getdel(this.key(`ticket:${ticket}`))) ?? undefined
  }
}

const RELEASE_HIT = `
if (tonumber(redis.call('GET', KEYS[1]) or '0') > 0) then return redis.call('DECR', KEYS[1]) end
return 0`

// A hold stores its end (caller's clock) rather than relying on the key's TTL, so the clock is
// the caller's; the PX expiry only clears the key once the hold is long over.
const ACQUIRE_HOLD = `
local now = tonumber(ARGV[1])
local ends = tonumber(redis.call('GET', KEYS[1]) or '0')
if ends > now then return ends - now end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
return 0`

/** Fixed windows (INCR + EXPIRE NX) and holds in Redis, so abuse limits hold across instances. */
export class RedisRateLimiter implements RateLimiter {
  constructor(
    private readonly redis: RedisClient,
    private readonly key: Key,
  ) {}

  async hit(key: string, windowSec: number) {
    const k = this.key(`rl:${key}`)
    const [[, count], , [, ttl]] = (await this.redis
      .multi()
      .incr(k)
      .expire(k, windowSec, 'NX')
      .ttl(k)
      .exec()) as [[unknown, number], unknown, [unknown, number]]
    return { count, resetInSec: Math.max(ttl, 0) }
  }

  async release(key: string) {
    // DECR on a key that expired meanwhile would create it at -1 with no TTL.
    await this.redis.eval(RELEASE_HIT, 1, this.key(`rl:${key}`))
  }

  async reset(key: string) {
    await this.redis.del(this.key(`rl:${key}`))
  }

  async acquireHold(key: string, holdMs: number, nowMs: number) {
    // Ends are passed as text: Lua would print a large number in exponent notation.
    const left = await this.redis.eval(
      ACQUIRE_HOLD,
      1,
      this.key(`rl:${key}`),
      String(nowMs),
      String(nowMs + holdMs),
      String(holdMs + 60_000),
    )
    return Number(left)
  }
}

// Token bucket in one round trip: refill by elapsed time, take one if available.
const TAKE_TOKEN = `
local tokens = tonumber(redis.call('HGET', KEYS[1], 't'))
local at = tonumber(redis.call('HGET', KEYS[1], 'a'))
local now, rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
if tokens == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + (now - at) / 1000 * rate)
local ok = 0
if tokens >= 1 then tokens = tokens - 1; ok = 1 end
redis.call('HSET', KEYS[1], 't', tokens, 'a', now)
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return ok`

/** The per-user message bucket shared by all of a user's sockets on every instance. */
export class RedisSendRate implements SendRate {
  constructor(
    private readonly redis: RedisClient,
    private readonly key: Key,
    private readonly perSec: number,
    private readonly burst: number,
  ) {}

  async take(userId: string): Promise<boolean> {
    const ok = await this.redis.eval(
      TAKE_TOKEN,
      1,
      this.key(`send:${userId}`),
      Date.now(),
      this.perSec,
      this.burst,
    )
    return ok === 1
  }
}

const INSTANCE_TTL_MS = 30_000

/**
 * Presence across instances. Each user has a hash of socket counts per instance; each instance
 * keeps its heartbeat in a sorted set. Counts of an instance that stopped heartbeating (crashed)
 * are ignored, so a crash cannot leave users online forever.
 */
export class RedisPresence implements RestorablePresence {
  private readonly timer: NodeJS.Timeout

  constructor(
    private readonly redis: RedisClient,
    private readonly key: Key,
    private readonly instanceId: string,
  ) {
    this.timer = setInterval(() => void this.beat().catch(() => undefined), INSTANCE_TTL_MS / 3)
    this.timer.unref()
    void this.beat().catch(() => undefined)
  }

  async connect(userId: string): Promise<boolean> {
    await this.redis.hincrby(this.key(`presence:${userId}`), this.instanceId, 1)
    return (await this.connections(userId)) === 1
  }

  async disconnect(userId: string): Promise<boolean> {
    const k = this.key(`presence:${userId}`)
    const left = await this.redis.hincrby(k, this.instanceId, -1)
    if (left <= 0) await this.redis.hdel(k, this.instanceId)
    return (await this.connections(userId)) === 0
  }

  async onlineAmong(userIds: string[]): Promise<Set<string>> {
    if (userIds.length === 0) return new Set()
    const live = await this.liveInstances()
    // Separate commands, not one pipeline: on a cluster the users' keys live on different shards
    // (auto-pipelining still sends them in one write per shard). Any failure rejects the whole
    // answer: Redis going away must not read as "all offline".
    const counts = await Promise.all(userIds.map((id) => this.redis.hgetall(this.key(`presence:${id}`))))
    return new Set(userIds.filter((_, i) => countLive(counts[i], live) > 0))
  }

  async connections(userId: string): Promise<number> {
    const [counts, live] = await Promise.all([
      this.redis.hgetall(this.key(`presence:${userId}`)),
      this.liveInstances(),
    ])
    return countLive(counts, live)
  }

  /**
   * Sets this instance's count for each user (0 removes it) and its heartbeat, over whatever Redis
   * holds (see broker/presence-fallback.ts). Plain commands, not a pipeline, all sent before the
   * first await: they go out in call order with `connect`'s and `disconnect`'s increments, so an
   * increment sent after `counts` was read lands on top of these values.
   */
  async restore(counts: ReadonlyMap<string, number>): Promise<void> {
    const writes: Promise<unknown>[] = [this.beat()]
    for (const [userId, n] of counts) {
      const k = this.key(`presence:${userId}`)
      writes.push(n > 0 ? this.redis.hset(k, this.instanceId, n) : this.redis.hdel(k, this.instanceId))
    }
    await Promise.all(writes)
  }

  async close(): Promise<void> {
    clearInterval(this.timer)
    await this.redis.zrem(this.key('instances'), this.instanceId).catch(() => undefined)
  }

  private async beat(): Promise<void> {
    await this.redis.zadd(this.key('instances'), Date.now(), this.instanceId)
  }

  private async liveInstances(): Promise<Set<string>> {
    const ids = await this.redis.zrangebyscore(this.key('instances'), Date.now() - INSTANCE_TTL_MS, '+inf')
    return new Set([...ids, this.instanceId])
  }
}

function countLive(counts: Record<string, string> | undefined, live: Set<string>): number {
  let n = 0
  for (const [instance, c] of Object.entries(counts ?? {})) if (live.has(instance)) n += Number(c)
  return n
}
