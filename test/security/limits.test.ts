import type { FastifyInstance } from 'fastify'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { createServices, memoryInfrastructure } from '../../src/wiring.js'
import {
  redisUrl,
  registerUser,
  startTestApp,
  type TestApp,
  type TestUser,
  testConfig,
  uniquePrefix,
} from '../helpers/app.js'
import { directChat, groupChat, TestSocket } from '../helpers/ws-client.js'

const PASSWORD = 'Sup3r-secret!'
let ipCounter = 0
/** A fresh client address per scenario (TEST-NET-2: public, so never a trusted proxy). */
const newIp = () => `198.51.100.${++ipCounter}`
let emailCounter = 0
const newEmail = () => `limits.${process.pid}.${Date.now()}.${++emailCounter}@example.com`

const signUp = (app: FastifyInstance, ip: string, email = newEmail()) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/auth/register',
    remoteAddress: ip,
    payload: { email, password: PASSWORD, full_name: 'Limit Tester' },
  })

/** registerUser, but each from its own address, so the registration limit under test is not in the way. */
async function newUser(app: FastifyInstance): Promise<TestUser> {
  const email = newEmail()
  const res = await signUp(app, newIp(), email)
  expect(res.statusCode, res.body).toBe(201)
  const body = res.json()
  return {
    id: body.user.id,
    email,
    password: PASSWORD,
    token: body.access_token,
    refresh: body.refresh_token,
    auth: { authorization: `Bearer ${body.access_token}` },
  }
}

const login = (app: FastifyInstance, email: string, password: string, ip: string, headers = {}) =>
  app.inject({
    method: 'POST',
    url: '/api/v1/auth/login',
    remoteAddress: ip,
    headers,
    payload: { email, password },
  })

const ticket = (app: FastifyInstance, u: TestUser) =>
  app.inject({ method: 'POST', url: '/api/v1/chat/ws-ticket', headers: u.auth })

/** A 429 problem whose Retry-After is a whole number of seconds within the window. */
function expectLimited(res: Awaited<ReturnType<FastifyInstance['inject']>>, windowSec: number) {
  expect(res.statusCode, res.body).toBe(429)
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
  const retryAfter = Number(res.headers['retry-after'])
  expect(Number.isInteger(retryAfter)).toBe(true)
  expect(retryAfter).toBeGreaterThan(0)
  expect(retryAfter).toBeLessThanOrEqual(windowSec)
}

/** The RateLimit-* headers (IETF draft) of a fixed-window limit. */
function expectQuota(
  res: Awaited<ReturnType<FastifyInstance['inject']>>,
  limit: number,
  remaining: number,
  windowSec: number,
) {
  expect(res.headers['ratelimit-limit']).toBe(String(limit))
  expect(res.headers['ratelimit-remaining']).toBe(String(remaining))
  const reset = Number(res.headers['ratelimit-reset'])
  expect(reset).toBeGreaterThan(0)
  expect(reset).toBeLessThanOrEqual(windowSec)
}

/** The Retry-After of a 429 problem, in seconds (fails the test on any other answer). */
function retryAfter(res: Awaited<ReturnType<FastifyInstance['inject']>>): number {
  expect(res.statusCode, res.body).toBe(429)
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
  return Number(res.headers['retry-after'])
}

/** A clock for the app's login holds that moves only when the test moves it (no waiting). */
function testClock() {
  const clock = { ms: Date.now(), now: () => clock.ms }
  return clock
}

/** Sends `n` messages at once over a socket; counts acks and rate_limited errors. */
async function burst(s: TestSocket, conversationId: string, n: number) {
  const from = s.frames.length
  const tag = crypto.randomUUID().slice(0, 8)
  for (let i = 0; i < n; i++) {
    s.send({
      type: 'message.send',
      conversation_id: conversationId,
      content: `m${i}`,
      client_msg_id: `${tag}-${i}`,
    })
  }
  const answered = (f: { type: string; client_msg_id?: unknown }) =>
    (f.type === 'message.ack' || f.type === 'error') && String(f.client_msg_id).startsWith(tag)
  for (let i = 0; i < n; i++) {
    await s.waitFor((f) => answered(f) && s.frames.slice(from).filter(answered).length >= i + 1, { from })
  }
  const frames = s.frames.slice(from).filter(answered)
  return {
    acked: frames.filter((f) => f.type === 'message.ack').length,
    limited: frames.filter((f) => f.type === 'error' && f.code === 'rate_limited').length,
  }
}

const SMALL_LIMITS = {
  RATE_LIMITS: 'on',
  LOGIN_MAX_FAILURES: '3',
  LOGIN_MAX_FAILURES_PER_IP: '5',
  LOGIN_WINDOW_SEC: '900',
  REGISTER_MAX_PER_IP: '3',
  REGISTER_WINDOW_SEC: '600',
  TICKET_MAX_PER_USER: '2',
  TICKET_WINDOW_SEC: '60',
  MESSAGE_RATE_PER_SEC: '1',
  MESSAGE_RATE_BURST: '3',
  CORS_ORIGINS: 'https://app.example.com',
}

describe('abuse limits (RATE_LIMITS=on, small limits)', () => {
  let t: TestApp
  let u: TestUser
  beforeAll(async () => {
    t = await startTestApp({ env: SMALL_LIMITS })
    await t.listen()
    u = await newUser(t.app)
  })
  afterAll(async () => t?.close())

  it('holds the login limits when guesses arrive all at once (no check-then-count race)', async () => {
    const email = (await signUp(t.app, newIp())).json().user.email as string
    const attacker = newIp()
    const guesses = await Promise.all(
      Array.from({ length: 20 }, () => login(t.app, email, 'wrong', attacker)),
    )
    const statuses = guesses.map((r) => r.statusCode)
    // LOGIN_MAX_FAILURES passwords plus the one that took the first hold were tried; every other
    // guess was refused untried.
    expect(statuses.filter((s) => s === 401)).toHaveLength(4)
    expect(statuses.filter((s) => s === 429)).toHaveLength(16)
    const ip = newIp()
    const fromOneIp = await Promise.all(
      Array.from({ length: 20 }, () => login(t.app, newEmail(), 'wrong', ip)),
    )
    expect(fromOneIp.filter((r) => r.statusCode === 401)).toHaveLength(5)
    const registrations = await Promise.all(Array.from({ length: 10 }, () => signUp(t.app, ip)))
    expect(registrations.filter((r) => r.statusCode === 201)).toHaveLength(3)
    const v = await newUser(t.app)
    const tickets = await Promise.all(Array.from({ length: 10 }, () => ticket(t.app, v)))
    expect(tickets.filter((r) => r.statusCode === 201)).toHaveLength(2)
  })

  it("a successful login clears that address's failures on the account", async () => {
    const email = (await signUp(t.app, newIp())).json().user.email as string
    const ip = newIp()
    // Uncleared, the second round's last two attempts would be the 4th and 5th: a hold, then a 429.
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 2; i++) expect((await login(t.app, email, 'wrong', ip)).statusCode).toBe(401)
      expect((await login(t.app, email, PASSWORD, ip)).statusCode).toBe(200)
    }
  })

  it('blocks an IP after LOGIN_MAX_FAILURES_PER_IP failures across accounts; other IPs go on', async () => {
    const ip = newIp()
    for (let i = 0; i < 5; i++) expect((await login(t.app, newEmail(), 'wrong', ip)).statusCode).toBe(401)
    expectLimited(await login(t.app, u.email, u.password, ip), 900)
    expect((await login(t.app, u.email, u.password, newIp())).statusCode).toBe(200)
  })

  it('successful logins do not count against the per-IP failure limit', async () => {
    const ip = newIp()
    for (let i = 0; i < 8; i++) expect((await login(t.app, u.email, u.password, ip)).statusCode).toBe(200)
    for (let i = 0; i < 5; i++) expect((await login(t.app, newEmail(), 'wrong', ip)).statusCode).toBe(401)
    expectLimited(await login(t.app, u.email, u.password, ip), 900)
  })

  it('X-Forwarded-For from an untrusted peer is ignored, so it cannot dodge the per-IP limit', async () => {
    const ip = newIp()
    for (let i = 0; i < 5; i++) {
      const spoofed = { 'x-forwarded-for': `203.0.113.${i + 1}` }
      expect((await login(t.app, newEmail(), 'wrong', ip, spoofed)).statusCode).toBe(401)
    }
    expectLimited(await login(t.app, u.email, u.password, ip, { 'x-forwarded-for': '203.0.113.99' }), 900)
  })

  it('behind a trusted proxy (loopback), the client address from X-Forwarded-For is what counts', async () => {
    const client = newIp()
    const viaProxy = (c: string) => ({ 'x-forwarded-for': c })
    for (let i = 0; i < 5; i++) {
      expect((await login(t.app, newEmail(), 'wrong', '127.0.0.1', viaProxy(client))).statusCode).toBe(401)
    }
    expectLimited(await login(t.app, u.email, u.password, '127.0.0.1', viaProxy(client)), 900)
    // Another client behind the same proxy is not blocked.
    expect((await login(t.app, u.email, u.password, '127.0.0.1', viaProxy(newIp()))).statusCode).toBe(200)
  })

  it('limits registrations per IP (REGISTER_MAX_PER_IP) with 429 + Retry-After, announced in RateLimit-*', async () => {
    const ip = newIp()
    for (let i = 0; i < 3; i++) {
      const res = await signUp(t.app, ip)
      expect(res.statusCode).toBe(201)
      expectQuota(res, 3, 2 - i, 600)
    }
    const refused = await signUp(t.app, ip)
    expectLimited(refused, 600)
    expectQuota(refused, 3, 0, 600)
    expect((await signUp(t.app, newIp())).statusCode).toBe(201)
  })

  it('limits WebSocket tickets per user (TICKET_MAX_PER_USER), announced in RateLimit-*', async () => {
    const v = await newUser(t.app)
    for (let i = 0; i < 2; i++) {
      const res = await ticket(t.app, v)
      expect(res.statusCode).toBe(201)
      expectQuota(res, 2, 1 - i, 60)
    }
    const refused = await ticket(t.app, v)
    expectLimited(refused, 60)
    expectQuota(refused, 2, 0, 60)
    expect((await ticket(t.app, u)).statusCode).toBe(201)
  })

  it('limits the message rate per user over WebSocket and REST alike (one bucket)', async () => {
    const [a, b] = [await newUser(t.app), await newUser(t.app)]
    const conv = await directChat(t.app, a, b)
    const s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: a.token })
    try {
      await s.waitFor((f) => f.type === 'ready')
      const started = Date.now()
      const { acked, limited } = await burst(s, conv, 8)
      // Burst 3, refilled at 1/s: at most 3 plus what the elapsed time refilled.
      const refilled = Math.ceil((Date.now() - started) / 1000)
      expect(acked).toBeLessThanOrEqual(3 + refilled)
      expect(acked + limited).toBe(8)
      expect(limited).toBeGreaterThan(0)
      // The bucket is (nearly) empty: REST sends are refused too.
      const statuses: number[] = []
      for (let i = 0; i < 3; i++) {
        const res = await t.app.inject({
          method: 'POST',
          url: `/api/v1/chat/conversations/${conv}/messages`,
          headers: a.auth,
          payload: { content: `rest ${i}` },
        })
        statuses.push(res.statusCode)
        if (res.statusCode === 429) expect(res.headers['retry-after']).toBe('1')
      }
      expect(statuses).toContain(429)
      // Another user has a bucket of their own.
      const other = await t.app.inject({
        method: 'POST',
        url: `/api/v1/chat/conversations/${conv}/messages`,
        headers: b.auth,
        payload: { content: 'my turn' },
      })
      expect(other.statusCode).toBe(201)
    } finally {
      s.close()
    }
  })

  it('CORS answers configured origins only', async () => {
    const preflight = (origin: string) =>
      t.app.inject({
        method: 'OPTIONS',
        url: '/api/v1/auth/me',
        headers: {
          origin,
          'access-control-request-method': 'GET',
          'access-control-request-headers': 'authorization',
        },
      })
    const allowed = await preflight('https://app.example.com')
    expect(allowed.statusCode).toBe(204)
    expect(allowed.headers['access-control-allow-origin']).toBe('https://app.example.com')
    const denied = await preflight('https://evil.example.com')
    expect(denied.headers['access-control-allow-origin']).toBeUndefined()
    const simple = await t.app.inject({ url: '/health', headers: { origin: 'https://evil.example.com' } })
    expect(simple.headers['access-control-allow-origin']).toBeUndefined()
    const good = await t.app.inject({ url: '/health', headers: { origin: 'https://app.example.com' } })
    expect(good.headers['access-control-allow-origin']).toBe('https://app.example.com')
  })
})

describe('login throttle: per account and address, never a lockout', () => {
  let t: TestApp
  const clock = testClock()
  // The per-address limit across accounts stays at its default (50), out of the way.
  const env = { RATE_LIMITS: 'on', LOGIN_MAX_FAILURES: '3', LOGIN_ACCOUNT_SLOWDOWN_AFTER: '40' }
  beforeAll(async () => {
    t = await startTestApp({ env, clock: clock.now })
  })
  afterAll(async () => t?.close())

  const account = async () => (await signUp(t.app, newIp())).json().user.email as string

  it('an address past LOGIN_MAX_FAILURES on an account waits 1, 2, 4, 8 s between attempts, right password or not', async () => {
    const email = await account()
    const attacker = newIp()
    for (let i = 0; i < 3; i++) expect((await login(t.app, email, 'wrong', attacker)).statusCode).toBe(401)
    // The 4th failure is tried at once and holds the address for 1 s; each one after doubles the hold.
    expect((await login(t.app, email, 'wrong', attacker)).statusCode).toBe(401)
    const waits: number[] = []
    for (let i = 0; i < 4; i++) {
      const wait = retryAfter(await login(t.app, email, 'wrong', attacker))
      waits.push(wait)
      clock.ms += wait * 1000
      expect((await login(t.app, email, 'wrong', attacker)).statusCode).toBe(401)
    }
    expect(waits).toEqual([1, 2, 4, 8])
    // Held, even the right password is not tried (the answer would tell a guess was right).
    expect(retryAfter(await login(t.app, email, PASSWORD, attacker))).toBe(16)
    clock.ms += 16_000
    expect((await login(t.app, email, PASSWORD, attacker)).statusCode).toBe(200)
  })

  it('the owner signs in from another address while an attack far past LOGIN_MAX_FAILURES runs', async () => {
    const email = await account()
    // 10 addresses × 3 failures at once, then one address hammering with 10 more at once (never
    // more than LOGIN_ACCOUNT_SLOWDOWN_AFTER attempts counted, so every address keeps its 3).
    const spread = Array.from({ length: 10 }, () => newIp())
    const first = await Promise.all(
      spread.flatMap((ip) => [1, 2, 3].map(() => login(t.app, email, 'wrong', ip))),
    )
    expect(first.map((r) => r.statusCode)).toEqual(Array(30).fill(401))
    const hammer = newIp()
    const hammering = await Promise.all(
      Array.from({ length: 10 }, () => login(t.app, email, 'wrong', hammer)),
    )
    expect(hammering.filter((r) => r.statusCode === 401)).toHaveLength(4)
    const owner = newIp()
    expect((await login(t.app, email, PASSWORD, owner)).statusCode).toBe(200)
    // A typo costs the owner nothing while under LOGIN_MAX_FAILURES of their own.
    expect((await login(t.app, email, 'typo', owner)).statusCode).toBe(401)
    expect((await login(t.app, email, PASSWORD, owner)).statusCode).toBe(200)
    // The attack goes on being held, address by address.
    expect(retryAfter(await login(t.app, email, 'wrong', hammer))).toBe(1)
  })

  it('past LOGIN_ACCOUNT_SLOWDOWN_AFTER failures, each address waits from its first failure, but its first attempt is always tried', async () => {
    const email = await account()
    // 13 addresses × 3 failures at once (39: under the ceiling, so all are tried), then 2 more.
    const spread = Array.from({ length: 13 }, () => newIp())
    const first = await Promise.all(
      spread.flatMap((ip) => [1, 2, 3].map(() => login(t.app, email, 'wrong', ip))),
    )
    expect(first.map((r) => r.statusCode)).toEqual(Array(39).fill(401))
    const next = newIp()
    for (let i = 0; i < 2; i++) expect((await login(t.app, email, 'wrong', next)).statusCode).toBe(401)
    // A new attacker address gets one guess, then waits.
    const late = newIp()
    expect((await login(t.app, email, 'wrong', late)).statusCode).toBe(401)
    expect(retryAfter(await login(t.app, email, 'wrong', late))).toBe(1)
    // The owner, from any address, is tried at once; a typo makes them wait 1 s, not a window.
    expect((await login(t.app, email, PASSWORD, newIp())).statusCode).toBe(200)
    const owner = newIp()
    expect((await login(t.app, email, 'typo', owner)).statusCode).toBe(401)
    expect(retryAfter(await login(t.app, email, PASSWORD, owner))).toBe(1)
    clock.ms += 1000
    expect((await login(t.app, email, PASSWORD, owner)).statusCode).toBe(200)
    // Other accounts are not affected.
    const other = await account()
    for (let i = 0; i < 3; i++) expect((await login(t.app, other, 'wrong', late)).statusCode).toBe(401)
  })
})

describe('abuse limits shared across two instances through Redis', () => {
  let a: TestApp
  let b: TestApp
  const clock = testClock()
  beforeAll(async () => {
    const env = {
      ...SMALL_LIMITS,
      REGISTER_MAX_PER_IP: '2',
      LOGIN_MAX_FAILURES: '2',
      REDIS_URL: redisUrl(),
      REDIS_PREFIX: uniquePrefix('limits'),
    }
    a = await startTestApp({ env, clock: clock.now })
    b = await startTestApp({ env, database: a.database, clock: clock.now })
  })
  afterAll(async () => {
    await b?.close()
    await a?.close()
  })

  it('registrations counted on instance A are refused on instance B', async () => {
    const ip = newIp()
    for (let i = 0; i < 2; i++) expect((await signUp(a.app, ip)).statusCode).toBe(201)
    expectLimited(await signUp(b.app, ip), 600)
    expect((await signUp(b.app, newIp())).statusCode).toBe(201)
  })

  it('holds when attempts race on both instances at once', async () => {
    const ip = newIp()
    const results = await Promise.all(
      Array.from({ length: 12 }, (_, i) => signUp(i % 2 === 0 ? a.app : b.app, ip)),
    )
    expect(results.filter((r) => r.statusCode === 201)).toHaveLength(2)
    expect(results.filter((r) => r.statusCode === 429)).toHaveLength(10)
    const email = (await signUp(a.app, newIp())).json().user.email as string
    const attacker = newIp()
    const guesses = await Promise.all(
      Array.from({ length: 12 }, (_, i) => login(i % 2 === 0 ? a.app : b.app, email, 'wrong', attacker)),
    )
    // LOGIN_MAX_FAILURES (2) free failures and one hold, whichever instance each guess reached.
    expect(guesses.filter((r) => r.statusCode === 401)).toHaveLength(3)
    expect(guesses.filter((r) => r.statusCode === 429)).toHaveLength(9)
    // Refused and successful attempts are taken back in Redis too: the IP has no failures counted.
    const ip2 = newIp()
    const user = (await signUp(b.app, newIp())).json().user as { email: string }
    for (let i = 0; i < 8; i++) {
      expect((await login(i % 2 ? a.app : b.app, user.email, PASSWORD, ip2)).statusCode).toBe(200)
    }
  })

  it("an address's failures on A hold it on B while the owner signs in on both; tickets issued on A count on B", async () => {
    const res = await signUp(a.app, newIp())
    const email = res.json().user.email as string
    const attacker = newIp()
    expect((await login(a.app, email, 'wrong', attacker)).statusCode).toBe(401)
    expect((await login(b.app, email, 'wrong', attacker)).statusCode).toBe(401)
    // The third failure starts a 1 s hold of this address on this account, on every instance.
    expect((await login(a.app, email, 'wrong', attacker)).statusCode).toBe(401)
    expect(retryAfter(await login(b.app, email, PASSWORD, attacker))).toBe(1)
    expect((await login(a.app, email, PASSWORD, newIp())).statusCode).toBe(200)
    expect((await login(b.app, email, PASSWORD, newIp())).statusCode).toBe(200)
    clock.ms += 1000
    expect((await login(b.app, email, 'wrong', attacker)).statusCode).toBe(401)
    expect(retryAfter(await login(a.app, email, 'wrong', attacker))).toBe(2)

    const user = { auth: { authorization: `Bearer ${res.json().access_token}` } } as TestUser
    expect((await ticket(a.app, user)).statusCode).toBe(201)
    expect((await ticket(b.app, user)).statusCode).toBe(201)
    expectLimited(await ticket(a.app, user), 60)
    expectLimited(await ticket(b.app, user), 60)
  })
})

describe('RATE_LIMITS=off', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({
      env: {
        ...SMALL_LIMITS,
        RATE_LIMITS: 'off',
        LOGIN_MAX_FAILURES: '1',
        LOGIN_MAX_FAILURES_PER_IP: '1',
        REGISTER_MAX_PER_IP: '1',
        TICKET_MAX_PER_USER: '1',
        MESSAGE_RATE_BURST: '1',
        GROUP_MAX_MEMBERS: '3',
        WS_MAX_CONNECTIONS_PER_USER: '2',
      },
    })
    await t.listen()
  })
  afterAll(async () => t?.close())

  it('logs a warning at startup, and only then', async () => {
    const startup = async (rateLimits: 'on' | 'off') => {
      const lines: { level: number; msg: string }[] = []
      const logger = pino({ level: 'info' }, { write: (s: string) => void lines.push(JSON.parse(s)) })
      const config = testConfig({ RATE_LIMITS: rateLimits })
      const app = await buildApp(createServices(config, t.database, memoryInfrastructure(config)), logger)
      await app.ready()
      await app.close()
      return lines.filter((l) => l.level === 40 && l.msg.includes('RATE_LIMITS=off'))
    }
    const warnings = await startup('off')
    expect(warnings).toHaveLength(1)
    expect(warnings[0]?.msg).toMatch(/login, registration, ticket and message rate limits are disabled/)
    expect(await startup('on')).toEqual([])
  })

  it('turns login, registration, ticket and message-rate limits off', async () => {
    const ip = newIp()
    const created = []
    for (let i = 0; i < 3; i++) created.push((await signUp(t.app, ip)).statusCode)
    expect(created).toEqual([201, 201, 201])
    const email = newEmail()
    await signUp(t.app, ip, email)
    for (let i = 0; i < 3; i++) expect((await login(t.app, email, 'wrong', ip)).statusCode).toBe(401)
    expect((await login(t.app, email, PASSWORD, ip)).statusCode).toBe(200)

    const [a, b] = [await registerUser(t.app, 'Unlimited'), await registerUser(t.app, 'Peer')]
    for (let i = 0; i < 3; i++) expect((await ticket(t.app, a)).statusCode).toBe(201)
    const conv = await directChat(t.app, a, b)
    const s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: a.token })
    try {
      await s.waitFor((f) => f.type === 'ready')
      expect(await burst(s, conv, 6)).toEqual({ acked: 6, limited: 0 })
    } finally {
      s.close()
    }
  })

  it('keeps size limits, group size, connection limit and authorization on', async () => {
    const [a, b, c, d, stranger] = await Promise.all(
      ['Owner', 'B', 'C', 'D', 'Stranger'].map((n) => registerUser(t.app, n)),
    )
    if (!a || !b || !c || !d || !stranger) throw new Error('setup')
    const group = await groupChat(t.app, a, [b, c])
    const add = await t.app.inject({
      method: 'POST',
      url: `/api/v1/chat/conversations/${group}/members`,
      headers: a.auth,
      payload: { user_id: d.id },
    })
    expect(add.statusCode).toBe(422)
    const big = await t.app.inject({
      method: 'POST',
      url: `/api/v1/chat/conversations/${group}/messages`,
      headers: a.auth,
      payload: { content: 'x'.repeat(70_000) },
    })
    expect(big.statusCode).toBe(413)
    expect(
      (await t.app.inject({ url: `/api/v1/chat/conversations/${group}/messages`, headers: stranger.auth }))
        .statusCode,
    ).toBe(404)
    expect((await t.app.inject({ url: `/api/v1/chat/conversations/${group}/messages` })).statusCode).toBe(401)

    const sockets = [
      await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: a.token }),
      await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: a.token }),
    ]
    try {
      expect((await TestSocket.refusal(`${t.url}/api/v1/chat/ws`, { token: a.token })).status).toBe(429)
      const s = sockets[0] as TestSocket
      s.send(JSON.stringify({ type: 'ping', pad: 'x'.repeat(20_000) }))
      expect((await s.waitClose()).code).toBe(1009)
    } finally {
      for (const s of sockets) s.close()
    }
  })
})

describe('limits at their defaults, security headers', () => {
  let t: TestApp
  let owner: TestUser
  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
    owner = await registerUser(t.app, 'Owner')
  })
  afterAll(async () => t?.close())

  it('uses the documented defaults', () => {
    const { config } = t.services
    expect(config.bodyLimitBytes).toBe(65_536)
    expect(config.ws.maxFrameBytes).toBe(16_384)
    expect(config.groupMaxMembers).toBe(1000)
    expect(config.messageMaxChars).toBe(4000)
    expect(config.ws.maxConnectionsPerUser).toBe(20)
    expect(config.http).toEqual({
      trustProxy: 'loopback,linklocal,uniquelocal',
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      idleTimeoutMs: 60_000,
      keepAliveTimeoutMs: 72_000,
    })
  })

  it('refuses a group over GROUP_MAX_MEMBERS (1000) before looking anyone up', async () => {
    const group = (n: number) =>
      t.app.inject({
        method: 'POST',
        url: '/api/v1/chat/groups',
        headers: owner.auth,
        payload: { title: 'crowd', member_ids: Array.from({ length: n }, () => crypto.randomUUID()) },
      })
    const over = await group(1000)
    expect(over.statusCode).toBe(422)
    expect(over.json().detail).toMatch(/at most 1000 members/)
    // 999 others + the owner fit: the ids are then looked up (and are unknown).
    expect((await group(999)).statusCode).toBe(404)
    expect((await group(1001)).statusCode).toBe(422)
  })

  it('lists 20 conversations per page by default and at most 100', async () => {
    for (let i = 0; i < 21; i++) {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/chat/groups',
        headers: owner.auth,
        payload: { title: `g${i}` },
      })
      expect(res.statusCode).toBe(201)
    }
    const first = await t.app.inject({ url: '/api/v1/chat/conversations', headers: owner.auth })
    expect(first.json().items).toHaveLength(20)
    expect(first.json().next_cursor).toEqual(expect.any(String))
    const all = await t.app.inject({ url: '/api/v1/chat/conversations?limit=100', headers: owner.auth })
    expect(all.json().items).toHaveLength(21)
    const tooMany = await t.app.inject({ url: '/api/v1/chat/conversations?limit=101', headers: owner.auth })
    expect(tooMany.statusCode).toBe(422)
  })

  it('enforces the body limit (64 KiB) and the message length (4000 characters)', async () => {
    const other = await registerUser(t.app, 'Other')
    const conv = await directChat(t.app, owner, other)
    const send = (content: string) =>
      t.app.inject({
        method: 'POST',
        url: `/api/v1/chat/conversations/${conv}/messages`,
        headers: owner.auth,
        payload: { content },
      })
    expect((await send('x'.repeat(4000))).statusCode).toBe(201)
    expect((await send('x'.repeat(4001))).statusCode).toBe(422)
    const justUnder = JSON.stringify({ content: 'x'.repeat(65_536 - 20) })
    expect(Buffer.byteLength(justUnder)).toBeLessThanOrEqual(65_536)
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/v1/chat/conversations/${conv}/messages`,
      headers: { ...owner.auth, 'content-type': 'application/json' },
      payload: `${justUnder.slice(0, -2)}${'x'.repeat(40)}"}`,
    })
    expect(res.statusCode).toBe(413)
    expect(res.json().type).toBe('/problems/body_too_large')
    // Just under the limit, the body is read (and the content refused for its length, not its size).
    const under = await t.app.inject({
      method: 'POST',
      url: `/api/v1/chat/conversations/${conv}/messages`,
      headers: { ...owner.auth, 'content-type': 'application/json' },
      payload: justUnder,
    })
    expect(under.statusCode).toBe(422)
  })

  it('accepts a frame of exactly WS_MAX_FRAME_BYTES (16 KiB) and closes with 1009 one byte over', async () => {
    const s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: owner.token })
    await s.waitFor((f) => f.type === 'ready')
    const frame = (bytes: number) => {
      const base = JSON.stringify({ type: 'ping', pad: '' })
      return JSON.stringify({ type: 'ping', pad: 'x'.repeat(bytes - Buffer.byteLength(base)) })
    }
    expect(Buffer.byteLength(frame(16_384))).toBe(16_384)
    const from = s.frames.length
    s.send(frame(16_384))
    // Read and refused for its content (`pad` is not a field), not for its size.
    expect((await s.waitFor((f) => f.type === 'error', { from })).code).toBe('invalid_frame')
    s.send(frame(16_385))
    expect((await s.waitClose()).code).toBe(1009)
  })

  it('sends security headers on every response, errors included', async () => {
    const responses = [
      await t.app.inject('/health'),
      await t.app.inject('/api/v1/auth/me'),
      await t.app.inject('/no/such/route'),
      await t.app.inject({ url: '/api/v1/auth/me', headers: owner.auth }),
    ]
    for (const res of responses) {
      const h = res.headers
      expect(h['x-content-type-options']).toBe('nosniff')
      expect(h['x-frame-options']).toBe('SAMEORIGIN')
      expect(h['strict-transport-security']).toMatch(/max-age=\d+/)
      expect(h['content-security-policy']).toMatch(/default-src 'self'/)
      expect(h['content-security-policy']).toMatch(/frame-ancestors 'self'/)
      expect(h['referrer-policy']).toBe('no-referrer')
      expect(h['cross-origin-opener-policy']).toBe('same-origin')
      expect(h['x-powered-by']).toBeUndefined()
    }
  })

  it('sends no CORS headers when CORS_ORIGINS is empty', async () => {
    for (const origin of ['https://app.example.com', 'null', 'http://localhost']) {
      const res = await t.app.inject({
        method: 'OPTIONS',
        url: '/api/v1/auth/me',
        headers: { origin, 'access-control-request-method': 'GET' },
      })
      expect(res.headers['access-control-allow-origin']).toBeUndefined()
      expect(res.headers['access-control-allow-credentials']).toBeUndefined()
    }
  })
})
