import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { FallbackPresence } from '../../src/broker/presence-fallback.js'
import { registerUser, startInstances, type TestApp, type TestUser, uniquePrefix } from '../helpers/app.js'
import { PrivateRedis } from '../helpers/private-redis.js'
import {
  directChat,
  eventually,
  freePort,
  groupChat,
  restSend,
  TestSocket,
  userSocketUrl,
} from '../helpers/ws-client.js'

const fallbackPresence = (node: TestApp): FallbackPresence => {
  const presence = node.services.presence.counts
  if (!(presence instanceof FallbackPresence)) throw new Error('expected the Redis presence with fallback')
  return presence
}

const ready = async (node: TestApp) => (await node.app.inject({ method: 'GET', url: '/ready' })).statusCode

/**
 * What each capability does while Redis is down (docs/scaling.md, "Redis down"): nothing answers
 * 500. Limits fall back to per-instance counters, presence to per-instance counts, tickets answer
 * 503. The tests run in order: Redis is stopped in `beforeAll` and restarted for the last group.
 */
describe('Redis down: rate limits, presence and tickets degrade, nothing answers 500', () => {
  let cluster: Awaited<ReturnType<typeof startInstances>>
  let redis: PrivateRedis
  let n0: TestApp
  let n1: TestApp
  let a: TestUser
  let b: TestUser
  /** Opens a socket on instance 0 during the outage. */
  let c: TestUser
  /** Sends bursts, and fails logins, during the outage. */
  let r: TestUser
  let rconv: string
  let conv: string
  /** A's user socket on instance 0, opened before the outage. */
  let sa: TestSocket
  /** Issued before the outage, redeemed during it. */
  let ticket: string
  /** Added to `group` during the outage (on instance 0) while its user socket is open on instance 1. */
  let j: TestUser
  let group: string
  let sj: TestSocket
  const sockets: TestSocket[] = []

  const login = (node: TestApp, email: string, password: string) =>
    node.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } })

  beforeAll(async () => {
    redis = new PrivateRedis(await freePort())
    await redis.start()
    cluster = await startInstances(
      2,
      { url: redis.url, prefix: uniquePrefix('degraded') },
      {
        RATE_LIMITS: 'on',
        REGISTER_MAX_PER_IP: '1000',
        LOGIN_MAX_FAILURES: '5',
        LOGIN_MAX_FAILURES_PER_IP: '1000',
        MESSAGE_RATE_PER_SEC: '1',
        MESSAGE_RATE_BURST: '5',
      },
    )
    n0 = cluster.node(0)
    n1 = cluster.node(1)
    a = await registerUser(n0.app, 'DegA')
    b = await registerUser(n0.app, 'DegB')
    c = await registerUser(n0.app, 'DegC')
    conv = await directChat(n0.app, a, b)
    await directChat(n0.app, c, b)
    r = await registerUser(n0.app, 'DegRate')
    rconv = await directChat(n0.app, r, b)
    sa = await TestSocket.open(userSocketUrl(n0.url), { token: a.token })
    sockets.push(sa)
    await sa.waitFor((f) => f.type === 'ready')
    const issued = await n0.app.inject({ method: 'POST', url: '/api/v1/chat/ws-ticket', headers: a.auth })
    ticket = issued.json().ticket as string
    j = await registerUser(n0.app, 'DegJoin')
    group = await groupChat(n0.app, b, [c])
    sj = await TestSocket.open(userSocketUrl(n1.url), { token: j.token })
    sockets.push(sj)
    await sj.waitFor((f) => f.type === 'ready')

    await redis.stop()
    await eventually(
      '/ready on both nodes to answer 503 with Redis down',
      async () => (await ready(n0)) === 503 && (await ready(n1)) === 503,
      15_000,
    )
  })
  afterAll(async () => {
    for (const s of sockets) s.close()
    if (!redis?.running) await redis?.start()
    await cluster?.close()
    await redis?.stop()
  })

  it('POST …/messages answers 201', async () => {
    const res = await n0.app.inject({
      method: 'POST',
      url: `/api/v1/chat/conversations/${conv}/messages`,
      headers: a.auth,
      payload: { content: 'rest while redis is down' },
    })
    expect(res.statusCode).toBe(201)
  })

  it('message.send on an open socket is acked', async () => {
    const from = sa.frames.length
    sa.send({
      type: 'message.send',
      conversation_id: conv,
      content: 'ws while down',
      client_msg_id: 'ws-down',
    })
    const answer = await sa.waitFor((f) => f.client_msg_id === 'ws-down', { from })
    expect(answer.type).toBe('message.ack')
  })

  it('login answers 200 and register 201', async () => {
    expect((await login(n1, a.email, a.password)).statusCode).toBe(200)
    expect(await registerUser(n1.app, 'DegNew')).toMatchObject({ id: expect.any(String) })
  })

  it('a bearer-token upgrade opens, and chat and presence on the same instance work', async () => {
    const sb = await TestSocket.open(userSocketUrl(n0.url), { token: b.token })
    sockets.push(sb)
    await sb.waitFor((f) => f.type === 'ready')
    // A's socket is on this instance: the local count says A is online.
    await sb.waitFor((f) => f.type === 'presence' && f.user_id === a.id && f.status === 'online')
    sa.send({
      type: 'message.send',
      conversation_id: conv,
      content: 'to b, same instance',
      client_msg_id: 'local',
    })
    const got = await sb.waitFor((f) => f.type === 'message.new')
    expect(got.message).toMatchObject({ content: 'to b, same instance' })
    sb.close()
    // C's socket stays open for the last test (presence after Redis is back).
    const sc = await TestSocket.open(userSocketUrl(n0.url), { token: c.token })
    sockets.push(sc)
    await sc.waitFor((f) => f.type === 'ready')
  })

  it('POST /ws-ticket answers 503 problem+json with Retry-After', async () => {
    const res = await n0.app.inject({ method: 'POST', url: '/api/v1/chat/ws-ticket', headers: a.auth })
    expect(res.statusCode).toBe(503)
    expect(res.headers['content-type']).toContain('application/problem+json')
    expect(Number(res.headers['retry-after'])).toBeGreaterThan(0)
    expect(res.json()).toMatchObject({ type: '/problems/unavailable', status: 503 })
  })

  it('a ?ticket= upgrade answers 503 problem+json with Retry-After', async () => {
    const refused = await TestSocket.refusal(`${userSocketUrl(n1.url)}?ticket=${ticket}`)
    expect(refused.status).toBe(503)
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0)
    expect(JSON.parse(refused.body)).toMatchObject({ type: '/problems/unavailable', status: 503 })
  })

  it('the message rate still holds, per instance', async () => {
    const post = (node: TestApp) =>
      node.app.inject({
        method: 'POST',
        url: `/api/v1/chat/conversations/${rconv}/messages`,
        headers: r.auth,
        payload: { content: 'burst' },
      })
    for (let i = 0; i < 5; i++) expect((await post(n0)).statusCode).toBe(201)
    const refused = await post(n0)
    expect(refused.statusCode).toBe(429)
    expect(refused.headers['retry-after']).toBeDefined()
    // Instance 1 counts on its own while Redis is down.
    expect((await post(n1)).statusCode).toBe(201)
  })

  it('adding a member answers 201 (its event cannot reach the other instance)', async () => {
    const res = await n0.app.inject({
      method: 'POST',
      url: `/api/v1/chat/conversations/${group}/members`,
      headers: b.auth,
      payload: { user_id: j.id },
    })
    expect(res.statusCode).toBe(201)
  })

  it('login failures are limited per instance', async () => {
    // The login throttle (per account and address): 5 free failures, the 6th starts a hold, the
    // 7th falls inside it. Counted by each instance alone while Redis is down.
    for (let i = 0; i < 6; i++) expect((await login(n0, r.email, 'wrong')).statusCode).toBe(401)
    expect((await login(n0, r.email, 'wrong')).statusCode).toBe(429)
    expect((await login(n1, r.email, 'wrong')).statusCode).toBe(401)
  })

  describe('once Redis is back (restarted empty, as after a crash)', () => {
    beforeAll(async () => {
      // Each instance re-writes its presence counts once its broker has reconnected.
      const restored = [n0, n1].map((n) => fallbackPresence(n).nextRestore())
      await redis.start()
      await Promise.all(restored)
      expect([await ready(n0), await ready(n1)]).toEqual([200, 200])
    })

    it('login failures are counted across instances again', async () => {
      const e = await registerUser(n0.app, 'DegShared')
      for (let i = 0; i < 3; i++) expect((await login(n0, e.email, 'wrong')).statusCode).toBe(401)
      for (let i = 0; i < 3; i++) expect((await login(n1, e.email, 'wrong')).statusCode).toBe(401)
      expect((await login(n1, e.email, 'wrong')).statusCode).toBe(429)
      expect((await login(n0, e.email, 'wrong')).statusCode).toBe(429)
    })

    // The counts written before the outage were lost with the crashed Redis: instance 0 re-wrote
    // its own when Redis was back.
    const onlineSeenFrom1 = async (user: TestUser) => {
      const sb = await TestSocket.open(userSocketUrl(n1.url), { token: b.token })
      sockets.push(sb)
      await sb.waitFor((f) => f.type === 'presence' && f.user_id === user.id && f.status === 'online')
      sb.close()
    }

    it('a socket opened before the outage is online to a peer on another instance', async () => {
      await onlineSeenFrom1(a)
    })

    it('a socket opened during the outage is online to a peer on another instance', async () => {
      await onlineSeenFrom1(c)
    })

    it('a socket whose user was added during the outage follows the conversation once Redis is back', async () => {
      // The member.added event was lost with the outage; the reconnect re-reads memberships.
      expect(await sj.waitFor((f) => f.type === 'member.added' && f.conversation_id === group)).toMatchObject(
        {
          user_id: j.id,
        },
      )
      const sent = await restSend(n0.app, b, group, 'welcome back')
      const got = await sj.waitFor((f) => f.type === 'message.new' && f.conversation_id === group)
      expect(got.message).toMatchObject({ id: sent.id, seq: sent.seq, content: 'welcome back' })
    })

    it('live delivery across instances is back', async () => {
      await restSend(n1.app, b, conv, 'from b on instance 1')
      await sa.waitFor(
        (f) =>
          f.type === 'message.new' && (f.message as { content: string }).content === 'from b on instance 1',
      )
    })
  })
})
