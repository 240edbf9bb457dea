import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  redisUrl,
  registerUser,
  startInstances,
  type TestRedis,
  type TestUser,
  uniquePrefix,
} from '../helpers/app.js'
import { PrivateRedisCluster } from '../helpers/redis-cluster.js'
import { type Frame, TestSocket } from '../helpers/ws-client.js'

/** A Redis Cluster of this file's own (3 primaries, 3 replicas), started for its describe. */
let redisCluster: PrivateRedisCluster | undefined
afterAll(async () => redisCluster?.remove())

const targets: [string, () => Promise<TestRedis>][] = [
  ['Redis', async () => ({ url: redisUrl(), prefix: uniquePrefix('cluster') })],
  [
    'a Redis Cluster (sharded Pub/Sub)',
    async () => {
      redisCluster = await PrivateRedisCluster.start()
      return { clusterNodes: redisCluster.seeds, prefix: uniquePrefix('cluster') }
    },
  ],
]

/**
 * Three instances on three ports sharing one PostgreSQL and one Redis (or Redis Cluster), as
 * behind a load balancer: every real-time guarantee must hold for users connected to different
 * instances.
 */
describe.each(targets)('three instances through %s', (_name, target) => {
  let cluster: Awaited<ReturnType<typeof startInstances>>
  const sockets: TestSocket[] = []

  beforeAll(async () => {
    cluster = await startInstances(3, await target())
  })
  afterAll(async () => {
    for (const s of sockets) s.close()
    await cluster?.close()
  })

  const node = (i: number) => cluster.node(i)
  const open = async (i: number, path: string, user: TestUser) => {
    const s = await TestSocket.open(`${node(i).url}${path}`, { token: user.token })
    sockets.push(s)
    return s
  }
  const group = async (owner: TestUser, members: TestUser[]) => {
    const res = await node(0).app.inject({
      method: 'POST',
      url: '/api/v1/chat/groups',
      headers: owner.auth,
      payload: { title: 'cluster', member_ids: members.map((m) => m.id) },
    })
    expect(res.statusCode).toBe(201)
    return res.json().id as string
  }
  const seqsOf = (s: TestSocket, conversationId: string) =>
    s.frames
      .filter((f) => f.type === 'message.new' && f.conversation_id === conversationId)
      .map((f) => (f.message as { seq: number }).seq)

  it('delivers every message exactly once and in order to sockets on every instance', async () => {
    const users = await Promise.all([0, 1, 2].map((i) => registerUser(node(i).app, `N${i}`)))
    const [a, b, c] = users as [TestUser, TestUser, TestUser]
    const id = await group(a, [b, c])
    // One user socket per user per instance, plus a conversation socket of `a` on node 2.
    const socks = [
      await open(0, '/api/v1/chat/ws', a),
      await open(1, '/api/v1/chat/ws', a),
      await open(1, '/api/v1/chat/ws', b),
      await open(2, '/api/v1/chat/ws', c),
      await open(2, `/api/v1/chat/ws/conversations/${id}`, a),
    ]
    const senders = [socks[0], socks[2], socks[3]] as TestSocket[]
    const perSender = 30
    senders.forEach((s, i) => {
      for (let k = 0; k < perSender; k++) {
        s.send({
          type: 'message.send',
          conversation_id: id,
          content: `m${i}-${k}`,
          client_msg_id: `s${i}-${k}`,
        })
      }
    })
    const total = perSender * senders.length
    for (const s of socks) await s.collect('message.new', total, 20_000)
    for (const s of socks) await s.settle()
    const expected = Array.from({ length: total }, (_, i) => i + 1)
    for (const s of socks) expect(seqsOf(s, id)).toEqual(expected)
  })

  it('answers a retried send on another instance with the original message and no new broadcast', async () => {
    const a = await registerUser(node(0).app, 'RetryA')
    const b = await registerUser(node(0).app, 'RetryB')
    const id = await group(a, [b])
    const watcher = await open(2, '/api/v1/chat/ws', b)
    const first = await open(0, `/api/v1/chat/ws/conversations/${id}`, a)
    first.send({ type: 'message.send', content: 'once', client_msg_id: 'retry-1' })
    const ack1 = await first.waitFor((f) => f.type === 'message.ack')
    const second = await open(1, `/api/v1/chat/ws/conversations/${id}`, a)
    second.send({ type: 'message.send', content: 'once', client_msg_id: 'retry-1' })
    const ack2 = await second.waitFor((f) => f.type === 'message.ack')
    expect((ack2.message as Frame).id).toBe((ack1.message as Frame).id)
    second.send({ type: 'message.send', content: 'marker', client_msg_id: 'retry-2' })
    await watcher.waitFor((f) => f.type === 'message.new' && (f.message as Frame).content === 'marker')
    expect(seqsOf(watcher, id)).toEqual([1, 2])
  })

  it('relays typing and presence across instances', async () => {
    const a = await registerUser(node(0).app, 'PresA')
    const b = await registerUser(node(0).app, 'PresB')
    const id = await group(a, [b])
    const sb = await open(1, '/api/v1/chat/ws', b)
    const sa = await open(0, '/api/v1/chat/ws', a)
    await sb.waitFor((f) => f.type === 'presence' && f.user_id === a.id && f.status === 'online')
    sa.send({ type: 'typing', conversation_id: id, state: 'start' })
    await sb.waitFor((f) => f.type === 'typing' && f.user_id === a.id && f.state === 'start')
    sa.close()
    await sb.waitFor((f) => f.type === 'presence' && f.user_id === a.id && f.status === 'offline')
  })

  it('stops delivery to a member removed on another instance', async () => {
    const owner = await registerUser(node(0).app, 'RmOwner')
    const gone = await registerUser(node(0).app, 'RmGone')
    const stays = await registerUser(node(0).app, 'RmStays')
    const id = await group(owner, [gone, stays])
    const goneUser = await open(2, '/api/v1/chat/ws', gone)
    // A member who stays, on the removed user's instance: once it has the message, that instance
    // has had it too, so "nothing arrived" for the removed user is an answer, not "not yet".
    const staysUser = await open(2, '/api/v1/chat/ws', stays)
    const goneConv = await open(1, `/api/v1/chat/ws/conversations/${id}`, gone)
    const removed = await node(0).app.inject({
      method: 'DELETE',
      url: `/api/v1/chat/conversations/${id}/members/${gone.id}`,
      headers: owner.auth,
    })
    expect(removed.statusCode).toBe(204)
    await goneUser.waitFor((f) => f.type === 'member.removed' && f.user_id === gone.id)
    expect((await goneConv.waitClose()).code).toBe(4403)
    const ownerSock = await open(0, `/api/v1/chat/ws/conversations/${id}`, owner)
    ownerSock.send({ type: 'message.send', content: 'after removal', client_msg_id: 'after' })
    const ack = await ownerSock.waitFor((f) => f.type === 'message.ack')
    const seq = (ack.message as { seq: number }).seq
    const delivered = await staysUser.waitFor((f) => f.type === 'message.new' && f.conversation_id === id)
    expect(delivered.message).toMatchObject({ seq, content: 'after removal', sender_id: owner.id })
    // Node 2 has handled the message. The removed user's socket answers a resume of the
    // conversation (from past anything it could have) with the removal again, after anything it
    // sent before: so the checks below are "nothing arrived, and nothing can", not "not yet".
    const from = goneUser.frames.length
    goneUser.send({ type: 'sync', cursors: { [id]: 1_000_000_000 } })
    expect(await goneUser.waitFor((f) => f.type === 'member.removed', { from })).toMatchObject({
      conversation_id: id,
      user_id: gone.id,
    })
    expect(seqsOf(goneUser, id)).toEqual([])
    expect(goneUser.frames.filter((f) => f.conversation_id === id).map((f) => f.type)).toEqual([
      'member.removed',
      'member.removed',
    ])
  })

  it('shares tickets and the per-user connection limit across instances', async () => {
    const u = await registerUser(node(0).app, 'Ticket')
    const issued = await node(0).app.inject({
      method: 'POST',
      url: '/api/v1/chat/ws-ticket',
      headers: u.auth,
    })
    expect(issued.statusCode).toBe(201)
    const ticket = issued.json().ticket as string
    const viaTicket = await TestSocket.open(`${node(1).url}/api/v1/chat/ws?ticket=${ticket}`)
    sockets.push(viaTicket)
    await expect(TestSocket.open(`${node(2).url}/api/v1/chat/ws?ticket=${ticket}`)).rejects.toMatchObject({
      status: 401,
    })
  })
})
