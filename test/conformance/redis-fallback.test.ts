import Fastify from 'fastify'
import { Redis } from 'ioredis'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { isRedisUnavailable } from '../../src/broker/redis-errors.js'
import { errorHandler } from '../../src/http/problem.js'
import { errorCode } from '../../src/ws/errors.js'
import { PrivateRedis } from '../helpers/private-redis.js'
import { freePort } from '../helpers/ws-client.js'

/** All on a Redis of this file's own, which it kills, freezes and restarts. */
let redis: PrivateRedis

beforeAll(async () => {
  redis = new PrivateRedis(await freePort())
  await redis.start()
})
afterEach(async () => {
  redis.resume()
  if (!redis.running) await redis.start()
})
afterAll(async () => redis?.stop())

/** Resolves when `conn` closes (`events.once` would reject on the 'error' that may come first). */
const closed = (conn: Redis) => new Promise<void>((resolve) => conn.once('close', () => resolve()))

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
