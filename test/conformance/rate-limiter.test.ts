import { Cluster, Redis } from 'ioredis'
import { afterAll, describe, expect, it } from 'vitest'
import { MemoryRateLimiter } from '../../src/broker/memory-stores.js'
import { RedisRateLimiter } from '../../src/broker/redis-stores.js'
import type { RateLimiter } from '../../src/services/ports.js'
import { redisUrl, uniquePrefix } from '../helpers/app.js'
import { PrivateRedisCluster } from '../helpers/redis-cluster.js'

/** Both limiters must answer alike: the login throttle and the abuse limits rely on these semantics. */
const redis = new Redis(redisUrl(), { lazyConnect: true })
const prefix = uniquePrefix('limiter')

/**
 * The same limiter on a Redis Cluster of this file's own, started when the first test calls it:
 * each key's commands (and the MULTI of `hit`) go to the shard that owns the key.
 */
let cluster: { servers: PrivateRedisCluster; client: Cluster } | undefined
function clusterLimiter(): RateLimiter {
  let started: Promise<RateLimiter> | undefined
  const ready = () => {
    started ??= PrivateRedisCluster.start().then(async (servers) => {
      const client = new Cluster(servers.ports.map((port) => ({ host: '127.0.0.1', port })))
      cluster = { servers, client }
      return new RedisRateLimiter(client, (name) => `${prefix}:${name}`)
    })
    return started
  }
  return {
    hit: async (key, windowSec) => (await ready()).hit(key, windowSec),
    release: async (key) => (await ready()).release(key),
    reset: async (key) => (await ready()).reset(key),
    acquireHold: async (key, holdMs, nowMs) => (await ready()).acquireHold(key, holdMs, nowMs),
  }
}
afterAll(async () => {
  cluster?.client.disconnect()
  await cluster?.servers.remove()
})

const factories: [string, () => RateLimiter][] = [
  ['memory', () => new MemoryRateLimiter()],
  ['redis', () => new RedisRateLimiter(redis, (name) => `${prefix}:${name}`)],
  ['redis cluster', clusterLimiter],
]

afterAll(async () => {
  if (redis.status === 'ready') {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500)
      cursor = next
      if (keys.length > 0) await redis.del(...keys)
    } while (cursor !== '0')
  }
  redis.disconnect()
})

let n = 0
const fresh = (name: string) => `${name}:${++n}`

describe.each(factories)('rate limiter: %s', (_name, make) => {
  const limiter = make()

  it('counts hits in a window, takes one back (never below zero) and resets', async () => {
    const key = fresh('hits')
    expect((await limiter.hit(key, 60)).count).toBe(1)
    expect((await limiter.hit(key, 60)).count).toBe(2)
    await limiter.release(key)
    const third = await limiter.hit(key, 60)
    expect(third.count).toBe(2)
    expect(third.resetInSec).toBeGreaterThan(0)
    expect(third.resetInSec).toBeLessThanOrEqual(60)
    await limiter.reset(key)
    expect((await limiter.hit(key, 60)).count).toBe(1)
    const other = fresh('hits')
    await limiter.release(other)
    expect((await limiter.hit(other, 60)).count).toBe(1)
  })

  it("a hold lets the first caller on and tells the next how long is left, on the caller's clock", async () => {
    const key = fresh('hold')
    // A real timestamp: the Redis script must keep it exact (no exponent notation).
    const t0 = Date.now()
    expect(await limiter.acquireHold(key, 2000, t0)).toBe(0)
    expect(await limiter.acquireHold(key, 4000, t0)).toBe(2000)
    expect(await limiter.acquireHold(key, 4000, t0 + 1999)).toBe(1)
    // Over: the next caller starts a hold of its own length.
    expect(await limiter.acquireHold(key, 4000, t0 + 2000)).toBe(0)
    expect(await limiter.acquireHold(key, 1000, t0 + 2500)).toBe(3500)
    // Holds are per key.
    expect(await limiter.acquireHold(fresh('hold'), 1000, t0 + 2500)).toBe(0)
  })

  it('of callers racing for a hold, exactly one gets it', async () => {
    const key = fresh('race')
    const now = Date.now()
    const results = await Promise.all(Array.from({ length: 20 }, () => limiter.acquireHold(key, 5000, now)))
    expect(results.filter((left) => left === 0)).toHaveLength(1)
    expect(results.filter((left) => left === 5000)).toHaveLength(19)
  })

  it('reset ends a hold', async () => {
    const key = fresh('reset')
    const now = Date.now()
    expect(await limiter.acquireHold(key, 60_000, now)).toBe(0)
    await limiter.reset(key)
    expect(await limiter.acquireHold(key, 60_000, now)).toBe(0)
  })
})
