import { randomUUID } from 'node:crypto'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import type { TicketStore } from '../../src/auth/tickets.js'
import {
  MemoryConnectionLeases,
  MemoryPresence,
  MemoryRateLimiter,
  MemorySendRate,
  MemoryTicketStore,
} from '../../src/broker/memory-stores.js'
import { FallbackPresence } from '../../src/broker/presence-fallback.js'
import { RedisBroker } from '../../src/broker/redis.js'
import type { RedisClient } from '../../src/broker/redis-client.js'
import { isRedisUnavailable } from '../../src/broker/redis-errors.js'
import { RateLimitedError, UnavailableError } from '../../src/errors.js'
import { errorHandler } from '../../src/http/problem.js'
import { createLogger } from '../../src/observability/logger.js'
import type { ConnectionLeases, Presence, RateLimiter, SendRate } from '../../src/services/ports.js'
import { consume } from '../../src/services/rate-limits.js'
import { infrastructure } from '../../src/wiring.js'
import { errorCode } from '../../src/ws/errors.js'
import { testConfig, uniquePrefix } from '../helpers/app.js'
import { PrivateRedis } from '../helpers/private-redis.js'
import { PrivateRedisCluster } from '../helpers/redis-cluster.js'
import { eventually, freePort } from '../helpers/ws-client.js'

/**
 * The shared-state stores behind Redis, as `brokerDeps` wires them (with their per-instance
 * fallbacks), against the in-memory ones: the same contract whether Redis answers or not. Then
 * what only the Redis ones do: share state between instances, fall back when Redis stops
 * mid-way, and share again (presence put right) when it is back. All on a Redis of this file's
 * own, which it kills and restarts.
 */

const PER_SEC = 1
const BURST = 3

interface Stores {
  limiter: RateLimiter
  sendRate: SendRate
  presence: Presence
  tickets: TicketStore
  leases: ConnectionLeases
}

interface Instance extends Stores {
  broker: RedisBroker
  presence: FallbackPresence
}

let redis: PrivateRedis
const instances: Instance[] = []

beforeAll(async () => {
  redis = new PrivateRedis(await freePort())
  await redis.start()
})
afterEach(async () => {
  redis.resume()
  if (!redis.running) await redis.start()
  for (const i of instances.splice(0)) {
    await i.presence.close()
    await i.broker.close()
  }
})
/** A Redis Cluster of this file's own, started when the first test needs it. */
let cluster: Promise<PrivateRedisCluster> | undefined
afterAll(async () => {
  await redis?.stop()
  await (await cluster)?.remove()
})

/**
 * One instance's stores, wired as production wires them; instances given one prefix share state.
 * On the test's Redis, or (`onCluster`) on its Redis Cluster.
 */
async function instance(prefix: string, onCluster = false): Promise<Instance> {
  if (onCluster) cluster ??= PrivateRedisCluster.start()
  const target: Record<string, string> =
    cluster && onCluster ? { REDIS_CLUSTER_NODES: (await cluster).seeds } : { REDIS_URL: redis.url }
  const config = testConfig({
    ...target,
    REDIS_PREFIX: prefix,
    MESSAGE_RATE_PER_SEC: String(PER_SEC),
    MESSAGE_RATE_BURST: String(BURST),
  })
  const { broker, limiter, sendRate, presence, tickets, leases } = await infrastructure(
    config,
    createLogger('silent'),
  )
  if (!(broker instanceof RedisBroker) || !(presence instanceof FallbackPresence)) {
    throw new Error('expected the Redis broker and the presence with fallback')
  }
  if (!limiter || !sendRate || !tickets) throw new Error('expected the Redis stores')
  const made = { broker, limiter, sendRate, presence, tickets, leases }
  instances.push(made)
  return made
}

const pair = async (): Promise<[Instance, Instance]> => {
  const prefix = uniquePrefix('fallback')
  return [await instance(prefix), await instance(prefix)]
}

/** Resolves when `conn` closes (`events.once` would reject on the 'error' that may come first). */
const closed = (conn: RedisClient) => new Promise<void>((resolve) => conn.once('close', () => resolve()))

/** Kills the test's Redis and returns once every instance's command connection has noticed. */
async function crash(of: Instance[], opts: { keepData?: boolean } = {}): Promise<void> {
  const allClosed = of.map((i) => closed(i.broker.commands))
  await redis.stop(opts)
  await Promise.all(allClosed)
}

/** Restarts it and returns once every instance has reconnected and written its presence back. */
async function revive(of: Instance[]): Promise<void> {
  const restored = of.map((i) => i.presence.nextRestore())
  await redis.start()
  await Promise.all(restored)
}

const variants: [string, () => Promise<Stores>][] = [
  [
    'memory',
    async () => ({
      limiter: new MemoryRateLimiter(),
      sendRate: new MemorySendRate(PER_SEC, BURST),
      presence: new MemoryPresence(),
      tickets: new MemoryTicketStore(),
      leases: new MemoryConnectionLeases(),
    }),
  ],
  ['redis', () => instance(uniquePrefix('fallback'))],
  ['redis cluster', () => instance(uniquePrefix('fallback'), true)],
  [
    'redis stopped (per-instance fallback)',
    async () => {
      const i = await instance(uniquePrefix('fallback'))
      await crash([i])
      return i
    },
  ],
]

describe.each(variants)('shared-state contract: %s', (_name, make) => {
  it('rate limiter: counts hits per key within a window', async () => {
    const { limiter } = await make()
    const key = randomUUID()
    expect((await limiter.hit(key, 60)).count).toBe(1)
    const second = await limiter.hit(key, 60)
    expect(second.count).toBe(2)
    expect(second.resetInSec).toBeGreaterThan(0)
    expect(second.resetInSec).toBeLessThanOrEqual(60)
    expect((await limiter.hit(randomUUID(), 60)).count).toBe(1)
  })

  it('rate limiter: release takes one back but never below zero; reset starts over', async () => {
    const { limiter } = await make()
    const key = randomUUID()
    await limiter.release(key)
    expect((await limiter.hit(key, 60)).count).toBe(1)
    await limiter.hit(key, 60)
    await limiter.release(key)
    expect((await limiter.hit(key, 60)).count).toBe(2)
    await limiter.reset(key)
    expect((await limiter.hit(key, 60)).count).toBe(1)
  })

  it('rate limiter: consume refuses past the limit with a retry-after, and does not count the refusal', async () => {
    const { limiter } = await make()
    const key = randomUUID()
    await consume(limiter, key, 2, 60)
    await consume(limiter, key, 2, 60)
    const refused = await consume(limiter, key, 2, 60).catch((err: unknown) => err)
    expect(refused).toBeInstanceOf(RateLimitedError)
    expect((refused as RateLimitedError).retryAfterSec).toBeGreaterThan(0)
    expect((await limiter.hit(key, 60)).count).toBe(3)
  })

  it('send rate: a burst, then refusals, per user', async () => {
    const { sendRate } = await make()
    const user = randomUUID()
    for (let i = 0; i < BURST; i++) expect(await sendRate.take(user)).toBe(true)
    expect(await sendRate.take(user)).toBe(false)
    expect(await sendRate.take(randomUUID())).toBe(true)
  })

  it('presence: the first socket brings a user online, the last takes them offline', async () => {
    const { presence } = await make()
    const [user, other] = [randomUUID(), randomUUID()]
    expect(await presence.connect(user)).toBe(true)
    expect(await presence.connect(user)).toBe(false)
    expect(await presence.connections(user)).toBe(2)
    expect(await presence.onlineAmong([user, other])).toEqual(new Set([user]))
    expect(await presence.disconnect(user)).toBe(false)
    expect(await presence.disconnect(user)).toBe(true)
    expect(await presence.connections(user)).toBe(0)
    expect(await presence.onlineAmong([user, other])).toEqual(new Set())
  })

  it('connection leases: at most the limit at once, a socket counted once, a released slot free again', async () => {
    const { leases } = await make()
    const user = randomUUID()
    const sockets = Array.from({ length: 8 }, () => randomUUID())
    const taken = await Promise.all(sockets.map((s) => leases.acquire(user, s, 3)))
    expect(taken.filter(Boolean)).toHaveLength(3)
    const holding = sockets.filter((_, i) => taken[i])
    // Asking again for a socket that holds a lease is not a second lease.
    expect(await leases.acquire(user, holding[0] as string, 3)).toBe(true)
    expect(await leases.acquire(user, randomUUID(), 3)).toBe(false)
    // Per user.
    expect(await leases.acquire(randomUUID(), randomUUID(), 3)).toBe(true)
    await leases.release(user, holding[0] as string)
    // Releasing twice, or a socket that held nothing, frees nothing more.
    await leases.release(user, holding[0] as string)
    await leases.release(user, randomUUID())
    expect(await leases.acquire(user, randomUUID(), 3)).toBe(true)
    expect(await leases.acquire(user, randomUUID(), 3)).toBe(false)
  })

  it('presence: who is online among many users (their keys spread over shards on a cluster)', async () => {
    const { presence } = await make()
    const users = Array.from({ length: 20 }, () => randomUUID())
    const online = users.filter((_, i) => i % 3 === 0)
    for (const user of online) await presence.connect(user)
    expect(await presence.onlineAmong(users)).toEqual(new Set(online))
    for (const user of online) await presence.disconnect(user)
  })
})

describe.each(variants.filter(([name]) => !name.includes('stopped')))('tickets: %s', (_name, make) => {
  it('a ticket is redeemed once, for its user; an unknown one is not', async () => {
    const { tickets } = await make()
    const user = randomUUID()
    const ticket = await tickets.issue(user, 30)
    expect(await tickets.redeem(ticket)).toBe(user)
    expect(await tickets.redeem(ticket)).toBeUndefined()
    expect(await tickets.redeem(`${ticket}x`)).toBeUndefined()
  })
})

describe('Redis stores with fallback: Redis stopped mid-way, then back', () => {
  it('connection leases are shared, per instance while Redis is down, and written back after', async () => {
    const [i0, i1] = await pair()
    const user = randomUUID()
    const [s1, s2, s3, s4, s5] = [randomUUID(), randomUUID(), randomUUID(), randomUUID(), randomUUID()]
    expect(await i0.leases.acquire(user, s1, 2)).toBe(true)
    expect(await i1.leases.acquire(user, s2, 2)).toBe(true)
    expect(await i0.leases.acquire(user, s3, 2)).toBe(false)

    // Redis crashes and comes back empty.
    await crash([i0, i1])
    // Each instance admits up to the limit on its own.
    expect(await i0.leases.acquire(user, s3, 2)).toBe(true)
    expect(await i0.leases.acquire(user, s4, 2)).toBe(false)
    expect(await i1.leases.acquire(user, s5, 2)).toBe(true)

    await revive([i0, i1])
    // Both instances write their sockets' leases back (s1, s3 and s2, s5): 4, over the limit.
    const key = i0.broker.key(`conns:${user}`)
    await eventually('the leases to be written back', async () => (await i0.broker.commands.zcard(key)) === 4)
    expect(await i1.leases.acquire(user, s4, 2)).toBe(false)
    for (const [i, s] of [
      [i0, s1],
      [i0, s3],
      [i1, s5],
    ] as const)
      await i.leases.release(user, s)
    expect(await i0.leases.acquire(user, s4, 2)).toBe(true)
    expect(await i1.leases.acquire(user, randomUUID(), 2)).toBe(false)
  })

  it('rate limits are shared, per instance while Redis is down, and shared again after', async () => {
    const [i0, i1] = await pair()
    const key = 'login:account:someone@example.com'
    expect((await i0.limiter.hit(key, 60)).count).toBe(1)
    expect((await i1.limiter.hit(key, 60)).count).toBe(2)

    await crash([i0, i1], { keepData: true })
    // Each instance counts alone, from a fresh window.
    expect((await i0.limiter.hit(key, 60)).count).toBe(1)
    expect((await i0.limiter.hit(key, 60)).count).toBe(2)
    expect((await i1.limiter.hit(key, 60)).count).toBe(1)
    await i1.limiter.release(key)
    await i1.limiter.reset(key)

    await revive([i0, i1])
    // Back on Redis, which kept its count of 2.
    expect((await i0.limiter.hit(key, 60)).count).toBe(3)
    expect((await i1.limiter.hit(key, 60)).count).toBe(4)
  })

  it('the message rate is per instance while Redis is down and shared again after', async () => {
    const [i0, i1] = await pair()
    const user = randomUUID()
    expect(await i0.sendRate.take(user)).toBe(true)

    await crash([i0, i1])
    for (let i = 0; i < BURST; i++) expect(await i0.sendRate.take(user)).toBe(true)
    expect(await i0.sendRate.take(user)).toBe(false)
    expect(await i1.sendRate.take(user)).toBe(true)

    await revive([i0, i1])
    // One bucket again (the restarted Redis starts it full): what instance 0 drains, 1 cannot take.
    for (let i = 0; i < BURST; i++) expect(await i0.sendRate.take(user)).toBe(true)
    expect(await i1.sendRate.take(user)).toBe(false)
  })

  it('presence counts locally while Redis is down and is re-written when a crashed Redis is back', async () => {
    const [i0, i1] = await pair()
    const [before, during, peer] = [randomUUID(), randomUUID(), randomUUID()]
    await i0.presence.connect(before)
    await i1.presence.connect(peer)
    expect(await i1.presence.onlineAmong([before])).toEqual(new Set([before]))

    await crash([i0, i1])
    expect(await i0.presence.connect(during)).toBe(true)
    expect(await i0.presence.connections(during)).toBe(1)
    // Only what this instance holds: the peer on instance 1 is not known here.
    expect(await i0.presence.onlineAmong([before, during, peer])).toEqual(new Set([before, during]))
    expect(await i1.presence.onlineAmong([before, during, peer])).toEqual(new Set([peer]))

    await revive([i0, i1])
    expect(await i1.presence.onlineAmong([before, during, peer])).toEqual(new Set([before, during, peer]))
    expect(await i1.presence.connections(during)).toBe(1)
    expect(await i0.presence.connect(during)).toBe(false)
    expect(await i1.presence.connections(during)).toBe(2)
  })

  it('presence drops the sockets closed while Redis was unreachable (Redis kept its data)', async () => {
    const [i0, i1] = await pair()
    const [stays, leaves, arrives] = [randomUUID(), randomUUID(), randomUUID()]
    await i0.presence.connect(stays)
    await i0.presence.connect(leaves)

    await crash([i0, i1], { keepData: true })
    expect(await i0.presence.disconnect(leaves)).toBe(true)
    expect(await i0.presence.connect(arrives)).toBe(true)

    await revive([i0, i1])
    expect(await i1.presence.onlineAmong([stays, leaves, arrives])).toEqual(new Set([stays, arrives]))
    expect(await i1.presence.connections(leaves)).toBe(0)
  })

  it('tickets answer 503 with a retry-after while Redis is down, and work again after', async () => {
    const [i0, i1] = await pair()
    const user = randomUUID()
    const ticket = await i0.tickets.issue(user, 30)

    await crash([i0, i1], { keepData: true })
    for (const attempt of [i0.tickets.issue(user, 30), i1.tickets.redeem(ticket)]) {
      const err = await attempt.catch((e: unknown) => e)
      expect(err).toBeInstanceOf(UnavailableError)
      expect((err as { retryAfterSec?: number }).retryAfterSec).toBeGreaterThan(0)
    }

    await revive([i0, i1])
    expect(await i1.tickets.redeem(ticket)).toBe(user)
    expect(await i0.tickets.redeem(await i1.tickets.issue(user, 30))).toBe(user)
  })
})

/**
 * Each way ioredis reports an unreachable Redis, produced by a real client on a real server, is
 * recognised, and the generic error paths turn it into a 503 / `unavailable`, never a 500.
 */
describe('recognising an unavailable Redis', () => {
  const clients: Redis[] = []
  afterEach(() => {
    for (const c of clients.splice(0)) c.disconnect()
  })

  /** A client with the broker's options (broker/redis.ts), without auto-pipelining. */
  async function client(extra: { commandTimeout?: number } = {}): Promise<Redis> {
    const c = new Redis(redis.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      enableOfflineQueue: false,
      retryStrategy: (times: number) => Math.min(times * 100, 2000),
      ...extra,
    })
    c.on('error', () => {})
    clients.push(c)
    await c.connect()
    return c
  }

  const failure = (p: Promise<unknown>) =>
    p.then(
      () => {
        throw new Error('expected the command to fail')
      },
      (err: unknown) => err,
    )

  /** What the HTTP error handler answers for `err`. */
  async function problemFor(err: unknown) {
    const app = Fastify()
    app.setErrorHandler(errorHandler)
    app.get('/', async () => {
      throw err
    })
    try {
      return await app.inject({ url: '/' })
    } finally {
      await app.close()
    }
  }

  async function expectUnavailable(err: unknown): Promise<void> {
    expect(isRedisUnavailable(err)).toBe(true)
    expect(errorCode(err).code).toBe('unavailable')
    const res = await problemFor(err)
    expect(res.statusCode).toBe(503)
    expect(res.headers['content-type']).toContain('application/problem+json')
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0)
    expect(res.json()).toMatchObject({ type: '/problems/unavailable' })
  }

  it('a command sent while disconnected (no offline queue)', async () => {
    const c = await client()
    const gone = closed(c)
    await redis.stop()
    await gone
    await expectUnavailable(await failure(c.get('k')))
  })

  it('a command in flight when the connection drops', async () => {
    const c = await client()
    redis.pause()
    const pending = failure(c.get('k'))
    await redis.stop()
    await expectUnavailable(await pending)
  })

  it('a command that times out on a hung Redis', async () => {
    const c = await client({ commandTimeout: 100 })
    redis.pause()
    await expectUnavailable(await failure(c.get('k')))
  })

  it('a command on a closed client', async () => {
    const c = await client()
    await c.quit()
    await expectUnavailable(await failure(c.get('k')))
  })

  it('but not Redis refusing a command (a bug, still a 500)', async () => {
    const c = await client()
    await c.hset('a-hash', 'f', 'v')
    const err = await failure(c.get('a-hash'))
    expect(isRedisUnavailable(err)).toBe(false)
    expect(errorCode(err).code).toBe('internal')
    expect((await problemFor(err)).statusCode).toBe(500)
  })
})
