import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registerUser, startInstances, type TestApp, uniquePrefix } from '../helpers/app.js'
import { PrivateRedis } from '../helpers/private-redis.js'
import { eventually, type Frame, freePort, TestSocket } from '../helpers/ws-client.js'

const ready = async (node: TestApp) => (await node.app.inject({ method: 'GET', url: '/ready' })).statusCode

describe('Redis stopped and restarted mid-conversation', () => {
  let cluster: Awaited<ReturnType<typeof startInstances>>
  let redis: PrivateRedis
  const sockets: TestSocket[] = []

  beforeAll(async () => {
    redis = new PrivateRedis(await freePort())
    await redis.start()
    cluster = await startInstances(2, { url: redis.url, prefix: uniquePrefix('outage') })
  })
  afterAll(async () => {
    for (const s of sockets) s.close()
    await cluster?.close()
    await redis?.stop()
  })

  it('keeps REST and same-instance chat up, reports 503, and loses no acked message', async () => {
    const [n0, n1] = [cluster.node(0), cluster.node(1)]
    const a = await registerUser(n0.app, 'OutA')
    const b = await registerUser(n0.app, 'OutB')
    const conv = await n0.app.inject({
      method: 'POST',
      url: '/api/v1/chat/conversations',
      headers: a.auth,
      payload: { recipient_id: b.id },
    })
    const id = conv.json().id as string
    const sa = await TestSocket.open(`${n0.url}/api/v1/chat/ws/conversations/${id}`, { token: a.token })
    const bLocal = await TestSocket.open(`${n0.url}/api/v1/chat/ws`, { token: b.token })
    const bRemote = await TestSocket.open(`${n1.url}/api/v1/chat/ws`, { token: b.token })
    sockets.push(sa, bLocal, bRemote)
    const send = async (content: string) => {
      const from = sa.frames.length
      sa.send({ type: 'message.send', content, client_msg_id: content })
      const ack = await sa.waitFor((f) => f.type === 'message.ack' && f.client_msg_id === content, { from })
      return (ack.message as { seq: number }).seq
    }
    await send('before')
    await bRemote.waitFor((f) => f.type === 'message.new')

    await redis.stop()
    await eventually(
      '/ready on node 0 to answer 503 with Redis down',
      async () => (await ready(n0)) === 503,
      15_000,
    )
    expect((await n0.app.inject({ method: 'GET', url: '/ready' })).json()).toMatchObject({
      broker: 'down',
      database: 'up',
    })
    // Acked while Redis is down: same-instance delivery still works.
    for (const c of ['during-1', 'during-2', 'during-3']) await send(c)
    await bLocal.collect('message.new', 4)
    const rest = await n1.app.inject({
      method: 'GET',
      url: `/api/v1/chat/conversations/${id}/messages`,
      headers: b.auth,
    })
    expect(rest.statusCode).toBe(200)
    expect(rest.json().items).toHaveLength(4)

    await redis.start()
    await eventually(
      '/ready on both nodes to answer 200 once Redis is back',
      async () => (await ready(n0)) === 200 && (await ready(n1)) === 200,
      15_000,
    )
    // The remote socket catches up by itself after the reconnect (feeds re-read the store)...
    await bRemote.collect('message.new', 4, 15_000)
    // ...and live delivery across instances is back without restarting anything.
    await send('after')
    await bRemote.collect('message.new', 5, 15_000)
    await bRemote.settle()
    const seqs = bRemote.frames.filter((f) => f.type === 'message.new').map((f) => (f.message as Frame).seq)
    expect(seqs).toEqual([1, 2, 3, 4, 5])
  })
})
