import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { conversationChannel } from '../../src/protocol/events.js'
import { registerUser, startInstances, type TestUser, uniquePrefix } from '../helpers/app.js'
import { PrivateRedisCluster } from '../helpers/redis-cluster.js'
import { directChat, eventually, type Frame, range, TestSocket } from '../helpers/ws-client.js'

/**
 * A primary of a real Redis Cluster is SIGKILLed while two users on two instances talk. The
 * conversation's channel lives on that primary, so live delivery between the instances stops
 * until its replica has taken over and the instances have subscribed there. Sending goes on all
 * along (messages are acknowledged once PostgreSQL has them); afterwards every acknowledged
 * message must reach the other user exactly once and in order: on the socket that stayed open,
 * after its `sync`, and on a socket opened afterwards that resumes from the start.
 *
 * The figures (time to failover, messages acked / delivered / lost / duplicated / reordered) are
 * printed; docs/scaling.md quotes a run.
 */
describe('Redis Cluster: a primary killed during a conversation', () => {
  let redis: PrivateRedisCluster
  let instances: Awaited<ReturnType<typeof startInstances>>
  const sockets: TestSocket[] = []

  beforeAll(async () => {
    redis = await PrivateRedisCluster.start()
    instances = await startInstances(2, { clusterNodes: redis.seeds, prefix: uniquePrefix('failover') })
  })
  afterAll(async () => {
    for (const s of sockets) s.close()
    await instances?.close()
    await redis?.remove()
  })

  const open = async (node: number, path: string, user: TestUser) => {
    const s = await TestSocket.open(`${instances.node(node).url}${path}`, { token: user.token })
    sockets.push(s)
    return s
  }

  it('delivers every acked message exactly once, in order, after failover and resume', async () => {
    const ann = await registerUser(instances.node(0).app, 'Ann')
    const bob = await registerUser(instances.node(1).app, 'Bob')
    const id = await directChat(instances.node(0).app, ann, bob)
    const sender = await open(0, `/api/v1/chat/ws/conversations/${id}`, ann)
    const reader = await open(1, '/api/v1/chat/ws', bob)
    await reader.waitFor((f) => f.type === 'ready')

    // Ann sends in rounds of 5 at once, each round once the previous one was acknowledged.
    const acked: number[] = []
    const ackedAt: number[] = []
    let sending = true
    const ack = async (n: number, from: number) => {
      const reply = await sender.waitFor(
        (f) => (f.type === 'message.ack' && f.client_msg_id === `c${n}`) || f.type === 'error',
        { from, timeoutMs: 10_000 },
      )
      if (reply.type === 'error') throw new Error(`send ${n} refused: ${JSON.stringify(reply)}`)
      return (reply.message as { seq: number }).seq
    }
    const send = async () => {
      for (let n = 1; sending; n += 5) {
        const from = sender.frames.length
        const round = range(n, n + 4)
        for (const k of round) sender.send({ type: 'message.send', content: `m${k}`, client_msg_id: `c${k}` })
        for (const seq of await Promise.all(round.map((k) => ack(k, from)))) {
          acked.push(seq)
          ackedAt.push(Date.now())
        }
      }
    }
    const sendingDone = send()
    const brokers = [0, 1].map((i) => instances.node(i).services.broker)
    // How often each instance recovered from an outage (and re-read the store for its sockets).
    const recoveries = [0, 0]
    let killedAt = 0
    let recoveredMs = 0
    brokers.forEach((b, i) => {
      b.onReconnect?.(() => {
        recoveries[i] = (recoveries[i] as number) + 1
        recoveredMs = Math.max(recoveredMs, Date.now() - killedAt)
      })
    })
    const failures = () => brokers.reduce((sum, b) => sum + b.publishFailures, 0)

    // Before: live delivery across the instances.
    await reader.waitFor((f) => f.type === 'message.new' && (f.message as { seq: number }).seq === 20)
    const victim = await redis.primaryOf(`${instances.prefix}:${conversationChannel(id)}`)
    killedAt = Date.now()
    const ackedBeforeKill = acked.length
    await redis.kill(victim)

    // The replica takes over: another node serves the slot, and every surviving node agrees the
    // cluster is whole again.
    const channel = `${instances.prefix}:${conversationChannel(id)}`
    await eventually(
      'a replica to take over the killed primary’s slots',
      async () => (await redis.primaryOf(channel).catch(() => victim)) !== victim,
      30_000,
    )
    await redis.waitUntilOk(30_000)
    const failoverMs = Date.now() - killedAt
    // And both instances are subscribed again (the broker reports healthy only then).
    await eventually(
      'both instances to resubscribe on the new primary',
      async () => brokers.every((b) => b.healthy()) && recoveries.every((n) => n > 0),
      30_000,
    )
    const ackedDuringFailover = acked.length - ackedBeforeKill

    // After: live delivery again. 20 more messages from here, then Ann stops.
    const target = acked.length + 20
    await eventually('20 more acknowledged sends', async () => acked.length >= target, 20_000)
    sending = false
    await sendingDone
    const last = Math.max(...acked)
    expect([...acked].sort((x, y) => x - y)).toEqual(range(1, acked.length))
    expect(last).toBe(acked.length)

    // What the open socket gets live (the instances re-read the store once resubscribed), before
    // any resume: given a few seconds, as it is a figure, not the guarantee.
    await eventually('the last message live', async () => reader.seqs(id).includes(last), 5000).catch(
      () => undefined,
    )
    const liveSeqs = reader.seqs(id)
    // The reader resumes from what it has (a client's cursor is the last seq it saw in order).
    const cursor = contiguous(liveSeqs)
    reader.send({ type: 'sync', cursors: { [id]: cursor } })
    await eventually(
      `seq ${last} on the socket that stayed open`,
      async () => reader.seqs(id).includes(last),
      10_000,
    )
    await reader.settle()
    // A socket opened afterwards, resuming from the start, as a client that lost everything.
    const fresh = await open(1, '/api/v1/chat/ws?resume=true', bob)
    fresh.send({ type: 'sync', cursors: { [id]: 0 } })
    await eventually(`seq ${last} on a fresh socket`, async () => fresh.seqs(id).includes(last), 10_000)
    await fresh.settle()

    const figures = {
      failoverMs,
      recoveredMs,
      acked: acked.length,
      longestAckGapMs: {
        beforeKill: longestGap(ackedAt.slice(0, ackedBeforeKill)),
        after: longestGap(ackedAt.slice(ackedBeforeKill - 1)),
      },
      ackedDuringFailover,
      publishFailures: failures(),
      recoveries,
      live: summary(liveSeqs, last),
      afterSync: summary(reader.seqs(id), last),
      freshSocket: summary(fresh.seqs(id), last),
    }
    console.log(`redis cluster failover: ${JSON.stringify(figures)}`)
    expect(reader.seqs(id)).toEqual(range(1, last))
    expect(fresh.seqs(id)).toEqual(range(1, last))
    // Nothing else went wrong on either socket.
    const errors = (s: TestSocket) => s.frames.filter((f: Frame) => f.type === 'error')
    expect(errors(reader)).toEqual([])
    expect(errors(fresh)).toEqual([])
  }, 120_000)
})

/** The longest time between two consecutive acknowledgements. */
function longestGap(times: number[]): number {
  return Math.max(0, ...times.slice(1).map((t, i) => t - (times[i] as number)))
}

/** The highest seq n such that 1..n all arrived. */
function contiguous(seqs: number[]): number {
  const seen = new Set(seqs)
  let n = 0
  while (seen.has(n + 1)) n++
  return n
}

/** Delivered, lost (acked, never delivered), duplicated and out-of-order counts of `seqs`. */
function summary(seqs: number[], last: number) {
  const seen = new Set(seqs)
  let reordered = 0
  for (let i = 1; i < seqs.length; i++) if ((seqs[i] as number) < (seqs[i - 1] as number)) reordered++
  return {
    delivered: seqs.length,
    lost: range(1, last).filter((s) => !seen.has(s)).length,
    duplicated: seqs.length - seen.size,
    reordered,
  }
}
