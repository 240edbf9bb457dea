import { Redis } from 'ioredis'
import { afterAll, afterEach, describe, expect, it } from 'vitest'
import { MemoryBroker } from '../../src/broker/memory.js'
import { RedisBroker } from '../../src/broker/redis.js'
import type { RedisTarget } from '../../src/broker/redis-client.js'
import { createLogger } from '../../src/observability/logger.js'
import { type ChatEvent, conversationChannel } from '../../src/protocol/events.js'
import type { Broker } from '../../src/services/ports.js'
import { redisUrl, uniquePrefix } from '../helpers/app.js'
import { PrivateRedisCluster } from '../helpers/redis-cluster.js'
import { eventually, range } from '../helpers/ws-client.js'

/**
 * Two "instances" of a broker kind sharing one transport (or, for memory, none), and how many
 * subscribers Redis counts on a (full) channel name.
 */
type Factory = () => Promise<{
  a: Broker
  b: Broker | undefined
  prefix: string
  subscribers?: (channel: string) => Promise<number>
}>

/** A Redis Cluster of this file's own, started by the first test that needs it. */
let cluster: Promise<PrivateRedisCluster> | undefined
afterAll(async () => (await cluster)?.remove())

const redisPair =
  (mode: 'classic' | 'sharded', target: () => Promise<RedisTarget>): Factory =>
  async () => {
    const prefix = uniquePrefix('broker')
    const on = await target()
    const make = async () => {
      const broker = new RedisBroker({ target: on, prefix, mode, logger: createLogger('silent') })
      await broker.connect()
      return broker
    }
    return { a: await make(), b: await make(), prefix, subscribers: (channel) => subscribers(channel) }
  }

/** Subscribers of a channel on the one Redis, classic and sharded together. */
async function subscribers(channel: string): Promise<number> {
  const redis = new Redis(redisUrl())
  try {
    const classic = (await redis.pubsub('NUMSUB', channel)) as [string, number]
    const sharded = (await redis.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number]
    return Number(classic[1]) + Number(sharded[1])
  } finally {
    redis.disconnect()
  }
}

const clusterPair: Factory = async () => {
  cluster ??= PrivateRedisCluster.start()
  const c = await cluster
  const pair = await redisPair('sharded', async () => ({
    clusterNodes: c.ports.map((port) => ({ host: '127.0.0.1', port })),
  }))()
  // Sharded subscriptions live on the primary that owns the channel's slot.
  const count = async (channel: string) =>
    c.admin(await c.primaryOf(channel), async (r) => {
      const [, n] = (await r.call('PUBSUB', 'SHARDNUMSUB', channel)) as [string, number]
      return Number(n)
    })
  return { ...pair, subscribers: count }
}

const single = async (): Promise<RedisTarget> => ({ url: redisUrl() })
const factories: [string, Factory][] = [
  ['memory', async () => ({ a: new MemoryBroker(), b: undefined, prefix: '' })],
  ['redis classic', redisPair('classic', single)],
  ['redis sharded', redisPair('sharded', single)],
  ['redis cluster (sharded)', clusterPair],
]

const event = (conversationId: string, seq: number): ChatEvent => ({
  type: 'read',
  conversation_id: conversationId,
  user_id: '00000000-0000-4000-8000-000000000001',
  seq,
})

const seqOf = (e: ChatEvent) => (e as { seq: number }).seq

/** Records what a listener gets, and waits (with a deadline) for what it should get. */
function recorder() {
  const got: ChatEvent[] = []
  let waiting: (() => void) | undefined
  const until = (done: () => boolean, what: string, timeoutMs: number): Promise<void> => {
    if (done()) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        waiting = undefined
        reject(new Error(`no ${what} within ${timeoutMs} ms; got ${got.length} events`))
      }, timeoutMs)
      waiting = () => {
        if (!done()) return
        waiting = undefined
        clearTimeout(timer)
        resolve()
      }
    })
  }
  return {
    got,
    listener: (e: ChatEvent) => {
      got.push(e)
      waiting?.()
    },
    /** Resolves once `n` events have arrived. */
    until: (n: number, timeoutMs = 3000) => until(() => got.length >= n, `${n} events`, timeoutMs),
    /** Resolves once the event with `seq` has arrived. */
    untilSeq: (seq: number, timeoutMs = 3000) =>
      until(() => got.some((e) => seqOf(e) === seq), `event ${seq}`, timeoutMs),
  }
}

describe.each(factories)('broker: %s', (_name, factory) => {
  const open: Broker[] = []
  afterEach(async () => {
    await Promise.all(open.splice(0).map((b) => b.close()))
  })
  const start = async () => {
    const pair = await factory()
    open.push(pair.a, ...(pair.b ? [pair.b] : []))
    return pair
  }

  it('delivers a publish to local listeners synchronously, once', async () => {
    const { a } = await start()
    const r = recorder()
    await a.subscribe(conversationChannel('c1'), r.listener)
    a.publish(event('c1', 1))
    expect(r.got).toHaveLength(1)
  })

  it('stops delivering after unsubscribe', async () => {
    const { a } = await start()
    const r = recorder()
    const off = await a.subscribe(conversationChannel('c2'), r.listener)
    off()
    a.publish(event('c2', 1))
    expect(r.got).toHaveLength(0)
  })

  it('reports healthy while connected', async () => {
    const { a } = await start()
    expect(a.healthy()).toBe(true)
  })
})

/** What only a broker between instances can do: two RedisBrokers on one Redis. */
describe.each(factories.filter(([name]) => name.startsWith('redis')))(
  'broker across instances: %s',
  (_name, factory) => {
    const open: Broker[] = []
    afterEach(async () => {
      await Promise.all(open.splice(0).map((b) => b.close()))
    })
    const start = async () => {
      const pair = await factory()
      if (!pair.b) throw new Error('this factory makes a single instance')
      open.push(pair.a, pair.b)
      return { ...pair, b: pair.b }
    }

    it('reaches another instance exactly once, and never echoes back to the publisher', async () => {
      const { a, b } = await start()
      const onA = recorder()
      const onB = recorder()
      await a.subscribe(conversationChannel('c3'), onA.listener)
      // Resolving subscribe means the subscription is confirmed: a publish right after reaches it.
      await b.subscribe(conversationChannel('c3'), onB.listener)
      for (let seq = 1; seq <= 20; seq++) a.publish(event('c3', seq))
      await onB.until(20)
      // A marker published after the batch proves nothing more is in flight.
      a.publish(event('c3', 21))
      await onB.until(21)
      expect(onB.got.map(seqOf)).toEqual(range(1, 21))
      // An echo of a's own publishes would reach a before this reply, which Redis relays after them.
      b.publish(event('c3', 22))
      await onA.untilSeq(22)
      expect(onA.got.map(seqOf)).toEqual(range(1, 22))
    })

    it('carries channels spread over every shard, each to its subscribers only', async () => {
      const { a, b } = await start()
      const onB = recorder()
      // 30 conversations: on a cluster their channels hash to slots on all three primaries.
      const ids = range(1, 30).map((i) => `spread-${i}`)
      for (const id of ids) await b.subscribe(conversationChannel(id), onB.listener)
      ids.forEach((id, i) => {
        a.publish(event(id, i + 1))
      })
      // Not subscribed: must not arrive.
      a.publish(event('spread-unheard', 99))
      await onB.until(30)
      a.publish(event(ids[0] as string, 31))
      await onB.untilSeq(31)
      expect(onB.got.map(seqOf).sort((x, y) => x - y)).toEqual(range(1, 31))
    })

    it('unsubscribes from Redis when the last local listener leaves', async () => {
      const { b, prefix, subscribers: numsub } = await start()
      const channel = `${prefix}:${conversationChannel('c4')}`
      const count = () => (numsub as NonNullable<typeof numsub>)(channel)
      const off1 = await b.subscribe(conversationChannel('c4'), () => {})
      const off2 = await b.subscribe(conversationChannel('c4'), () => {})
      expect(await count()).toBe(1)
      off1()
      expect(await count()).toBe(1)
      off2()
      // UNSUBSCRIBE travels on b's subscriber connection, which this client cannot order against
      // (and Redis sends no event for it): poll until Redis reflects it.
      await eventually('Redis to count no subscriber on the channel', async () => (await count()) === 0)
    })
  },
)
