import { randomUUID } from 'node:crypto'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { PROTOCOL_VERSION } from '../../src/protocol/frames.js'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import {
  conversationSocketUrl,
  directChat,
  eventually,
  type OpenOptions,
  signAccessToken,
  TestSocket,
  userSocketUrl,
} from '../helpers/ws-client.js'

const ALLOWED_ORIGIN = 'https://chat.example.com'

/** Everything that can refuse a socket answers with an HTTP status before the upgrade. */
describe('WebSocket refusals before the upgrade', () => {
  let t: TestApp
  let a: TestUser
  let b: TestUser
  let conv: string
  const open: TestSocket[] = []

  beforeAll(async () => {
    t = await startTestApp({ env: { WS_ORIGINS: ALLOWED_ORIGIN, WS_MAX_CONNECTIONS_PER_USER: '2' } })
    await t.listen()
    a = await registerUser(t.app, 'Ann')
    b = await registerUser(t.app, 'Bob')
    conv = await directChat(t.app, a, b)
  })
  afterEach(() => {
    for (const s of open.splice(0)) s.close()
  })
  afterAll(async () => t?.close())

  /** Opens a socket and checks its first frame: `ready` for `user` (bound to `conversation`, if given). */
  const accepts = async (url: string, opts: OpenOptions, user: TestUser, conversation?: string) => {
    const s = await TestSocket.open(url, opts)
    open.push(s)
    expect(await s.waitFor(() => true)).toEqual({
      type: 'ready',
      user_id: user.id,
      protocol: PROTOCOL_VERSION,
      ...(conversation === undefined ? {} : { conversation_id: conversation }),
    })
    return s
  }
  const statusOf = async (url: string, opts: OpenOptions = {}) => (await TestSocket.refusal(url, opts)).status
  const bothSockets = () => [userSocketUrl(t.url), conversationSocketUrl(t.url, conv)]
  const ticketFor = async (u: TestUser) => {
    const res = await t.app.inject({ method: 'POST', url: '/api/v1/chat/ws-ticket', headers: u.auth })
    expect(res.statusCode).toBe(201)
    return res.json().ticket as string
  }

  it('refuses a missing, malformed, badly signed or expired token with 401', async () => {
    const forged = `${a.token.slice(0, -4)}AAAA`
    for (const url of bothSockets()) {
      expect(await statusOf(url)).toBe(401)
      expect(await statusOf(url, { token: 'not-a-jwt' })).toBe(401)
      expect(await statusOf(url, { token: forged })).toBe(401)
      expect(await statusOf(url, { token: await signAccessToken(a.id, -60) })).toBe(401)
      expect(await statusOf(url, { headers: { authorization: `Basic ${a.token}` } })).toBe(401)
    }
  })

  it('refuses an unknown conversation, a non-member and a malformed id with 404', async () => {
    const eve = await registerUser(t.app, 'Eve')
    expect(await statusOf(conversationSocketUrl(t.url, randomUUID()), { token: a.token })).toBe(404)
    expect(await statusOf(conversationSocketUrl(t.url, conv), { token: eve.token })).toBe(404)
    expect(await statusOf(conversationSocketUrl(t.url, 'not-a-uuid'), { token: a.token })).toBe(404)
  })

  it('refuses a cross-site Origin with 403, and accepts listed and same-origin ones', async () => {
    const foreign = { token: a.token, headers: { origin: 'https://evil.example' } }
    for (const url of bothSockets()) expect(await statusOf(url, foreign)).toBe(403)
    // A page on another port of the same host is another origin too.
    expect(
      await statusOf(userSocketUrl(t.url), { token: a.token, headers: { origin: 'http://127.0.0.1:1' } }),
    ).toBe(403)
    await accepts(userSocketUrl(t.url), { token: a.token, headers: { origin: ALLOWED_ORIGIN } }, a)
    await accepts(conversationSocketUrl(t.url, conv), { token: b.token, headers: { origin: t.url } }, b, conv)
  })

  it('accepts the token as the subprotocol pair bearer, <jwt> and echoes only "bearer"', async () => {
    const s = await accepts(userSocketUrl(t.url), { protocols: ['bearer', a.token] }, a)
    expect(s.ws.protocol).toBe('bearer')
    expect(await statusOf(userSocketUrl(t.url), { protocols: ['bearer', 'garbage'] })).toBe(401)
  })

  it('accepts a ticket once on either socket, then refuses it with 401', async () => {
    for (const [url, bound] of [
      [userSocketUrl(t.url), undefined],
      [conversationSocketUrl(t.url, conv), conv],
    ] as const) {
      const ticket = await ticketFor(a)
      const s = await accepts(`${url}?ticket=${ticket}`, {}, a, bound)
      expect(await statusOf(`${url}?ticket=${ticket}`)).toBe(401)
      s.close()
      await s.waitClose()
    }
  })

  it('refuses an unknown or expired ticket with 401', async () => {
    expect(await statusOf(`${userSocketUrl(t.url)}?ticket=${'x'.repeat(32)}`)).toBe(401)
    // Issued with no lifetime left: expired by the time it is presented, without waiting 30 s.
    const expired = await t.services.tickets.issue(a.id, 0)
    expect(await statusOf(`${userSocketUrl(t.url)}?ticket=${expired}`)).toBe(401)
  })

  it('refuses a socket past the per-user connection limit with 429, and accepts one again after a close', async () => {
    // Fresh users: sockets of the other tests may still be closing.
    const [c, d] = [await registerUser(t.app, 'Cid'), await registerUser(t.app, 'Dan')]
    const cd = await directChat(t.app, c, d)
    const first = await accepts(userSocketUrl(t.url), { token: c.token }, c)
    await accepts(conversationSocketUrl(t.url, cd), { token: c.token }, c, cd)
    expect(await statusOf(userSocketUrl(t.url), { token: c.token })).toBe(429)
    // Another user is not affected.
    await accepts(userSocketUrl(t.url), { token: d.token }, d)
    first.close()
    await first.waitClose()
    await eventually(
      'the closed socket to be released (presence counts 1 socket)',
      async () => (await t.services.presence.connections(c.id)) === 1,
    )
    await accepts(userSocketUrl(t.url), { token: c.token }, c)
  })

  it('holds the connection limit when sockets open all at once', async () => {
    const e = await registerUser(t.app, 'Eli')
    const attempts = await Promise.allSettled(
      Array.from({ length: 6 }, () => TestSocket.open(userSocketUrl(t.url), { token: e.token })),
    )
    const opened = attempts.flatMap((r) => (r.status === 'fulfilled' ? [r.value] : []))
    open.push(...opened)
    const refused = attempts.flatMap((r) =>
      r.status === 'rejected' ? [(r.reason as { status?: number }).status] : [],
    )
    expect(opened).toHaveLength(2)
    expect(refused).toEqual([429, 429, 429, 429])
  })
})
