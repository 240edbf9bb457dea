import { eq } from 'drizzle-orm'
import { exportJWK, exportSPKI, generateKeyPair, type JWTPayload, SignJWT, UnsecuredJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { users } from '../../src/store/schema.js'
import {
  registerUser,
  startTestApp,
  TEST_KID,
  TEST_SECRET,
  type TestApp,
  type TestUser,
} from '../helpers/app.js'
import { conversationSocketUrl, directChat, TestSocket, userSocketUrl } from '../helpers/ws-client.js'

const HS_KEY = new TextEncoder().encode(TEST_SECRET)
const now = () => Math.floor(Date.now() / 1000)
const b64 = (o: object) => Buffer.from(JSON.stringify(o)).toString('base64url')

/** The claims the service puts in an access token, for `sub`, valid right now. */
const claims = (sub: string, extra: JWTPayload = {}): JWTPayload => ({
  typ: 'access',
  sub,
  iss: 'chat-api',
  aud: 'chat-api',
  iat: now(),
  exp: now() + 600,
  jti: crypto.randomUUID(),
  ...extra,
})

const hs256 = (payload: JWTPayload, key: Uint8Array = HS_KEY, alg = 'HS256') =>
  new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', kid: TEST_KID }).sign(key)

describe('JWT attacks', () => {
  let t: TestApp
  let victim: TestUser
  let attacker: TestUser
  /** Tokens an attacker could make, each of which must be refused everywhere a token is accepted. */
  const forged: { name: string; token: string }[] = []

  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
    victim = await registerUser(t.app, 'Victim')
    attacker = await registerUser(t.app, 'Attacker')
    const rsa = await generateKeyPair('RS256', { extractable: true })
    const publicPem = await exportSPKI(rsa.publicKey)
    const [, attackerPayload = '', attackerSig = ''] = attacker.token.split('.')
    const [victimHeader = ''] = victim.token.split('.')
    const tampered = JSON.parse(Buffer.from(attackerPayload, 'base64url').toString())
    forged.push(
      { name: 'alg none', token: new UnsecuredJWT(claims(victim.id)).encode() },
      {
        name: 'alg none with a signature kept',
        token: `${b64({ alg: 'none', typ: 'JWT' })}.${b64(claims(victim.id))}.${attackerSig}`,
      },
      {
        name: 'alg "NONE" spelled differently',
        token: `${b64({ alg: 'NONE', typ: 'JWT' })}.${b64(claims(victim.id))}.`,
      },
      {
        name: 'RS256 with an attacker key pair',
        token: await new SignJWT(claims(victim.id))
          .setProtectedHeader({ alg: 'RS256', kid: TEST_KID })
          .sign(rsa.privateKey),
      },
      {
        name: 'RS256 with the attacker key embedded as jwk header',
        token: await new SignJWT(claims(victim.id))
          .setProtectedHeader({ alg: 'RS256', kid: TEST_KID, jwk: await exportJWK(rsa.publicKey) })
          .sign(rsa.privateKey),
      },
      {
        name: 'HS256 keyed with a public key (RS/HS confusion)',
        token: await hs256(claims(victim.id), new TextEncoder().encode(publicPem)),
      },
      { name: 'HS512 with the right secret', token: await hs256(claims(victim.id), HS_KEY, 'HS512') },
      {
        name: 'HS256 with another secret',
        token: await hs256(claims(victim.id), new TextEncoder().encode('x'.repeat(64))),
      },
      { name: 'wrong issuer', token: await hs256(claims(victim.id, { iss: 'evil' })) },
      { name: 'wrong audience', token: await hs256(claims(victim.id, { aud: 'other-service' })) },
      { name: 'expired', token: await hs256(claims(victim.id, { iat: now() - 700, exp: now() - 60 })) },
      { name: 'not yet valid (nbf in 1 h)', token: await hs256(claims(victim.id, { nbf: now() + 3600 })) },
      { name: 'issued in the future', token: await hs256(claims(victim.id, { iat: now() + 3600 })) },
      {
        name: 'not an access token (typ refresh)',
        token: await hs256(claims(victim.id, { typ: 'refresh' })),
      },
      { name: 'no jti', token: await hs256(claims(victim.id, { jti: undefined })) },
      { name: 'no exp', token: await hs256(claims(victim.id, { exp: undefined })) },
      { name: 'unknown user', token: await hs256(claims(crypto.randomUUID())) },
      {
        name: "tampered payload (attacker's signature, victim's sub)",
        token: `${victimHeader}.${b64({ ...tampered, sub: victim.id })}.${attackerSig}`,
      },
      {
        name: 'tampered signature',
        token: `${victim.token.slice(0, -4)}${victim.token.endsWith('AAAA') ? 'BBBB' : 'AAAA'}`,
      },
      // Signed with the real secret: only checking the claims themselves refuses these.
      { name: 'sub not a UUID', token: await hs256(claims('not-a-uuid')) },
      { name: 'sub a UUID with extra text', token: await hs256(claims(`${victim.id}x`)) },
      { name: 'sub empty', token: await hs256(claims('')) },
      { name: 'sub 2,000 characters long', token: await hs256(claims('x'.repeat(2000))) },
      { name: 'sub a number', token: await hs256({ ...claims(victim.id), sub: 42 as unknown as string }) },
      {
        name: 'jti an object',
        token: await hs256(claims(victim.id, { jti: { a: 1 } as unknown as string })),
      },
      { name: 'exp a string', token: await hs256(claims(victim.id, { exp: 'soon' as unknown as number })) },
      { name: 'a refresh token as bearer', token: victim.refresh },
      { name: 'garbage', token: 'not.a.jwt' },
    )
  })
  afterAll(async () => t?.close())

  const me = (authorization: string) => t.app.inject({ url: '/api/v1/auth/me', headers: { authorization } })

  it('a genuine token is accepted (so the refusals below are about the forgery)', async () => {
    const res = await me(`Bearer ${victim.token}`)
    expect(res.statusCode).toBe(200)
    expect(res.json().id).toBe(victim.id)
    const s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: victim.token })
    expect((await s.waitFor((f) => f.type === 'ready')).user_id).toBe(victim.id)
    s.close()
  })

  it('refuses every forged token on REST with 401', async () => {
    const accepted: string[] = []
    for (const { name, token } of forged) {
      const res = await me(`Bearer ${token}`)
      if (res.statusCode !== 401) accepted.push(`${name}: ${res.statusCode}`)
    }
    expect(forged.length).toBeGreaterThanOrEqual(20)
    expect(accepted).toEqual([])
  })

  it('refuses every forged token at both WebSocket upgrades with 401, as header and as subprotocol', async () => {
    const conv = await directChat(t.app, victim, attacker)
    const accepted: string[] = []
    for (const url of [userSocketUrl(t.url), conversationSocketUrl(t.url, conv)]) {
      for (const { name, token } of forged) {
        for (const opts of [{ token }, { protocols: ['bearer', token] }]) {
          const { status } = await TestSocket.refusal(url, opts).catch((err) => ({
            status: `accepted or failed: ${String(err)}`,
          }))
          if (status !== 401)
            accepted.push(`${name} (${url}, ${'token' in opts ? 'header' : 'subprotocol'}): ${status}`)
        }
      }
    }
    expect(accepted).toEqual([])
  })

  it('refuses every forged token in an `auth` frame, keeping the socket open', async () => {
    const s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: attacker.token })
    try {
      await s.waitFor((f) => f.type === 'ready')
      // Someone else's genuine token cannot take the socket over either.
      for (const token of [...forged.map((f) => f.token), victim.token]) {
        const from = s.frames.length
        s.send({ type: 'auth', access_token: token })
        const answer = await s.waitFor((f) => f.type === 'error', { from })
        expect(answer.code, token).toBe('unauthorized')
      }
      await s.settle()
      expect(s.closed).toBeUndefined()
    } finally {
      s.close()
    }
  })

  it('refuses malformed Authorization headers', async () => {
    for (const header of [
      `Basic ${Buffer.from(`${victim.email}:${victim.password}`).toString('base64')}`,
      'Bearer',
      'Bearer ',
      `Token ${victim.token}`,
      `Bearer ${victim.token}x`,
      `Bearer ${victim.token.split('.').slice(0, 2).join('.')}`,
    ]) {
      expect((await me(header)).statusCode, header).toBe(401)
    }
  })

  it("refuses a deleted user's access token, refresh token and sockets", async () => {
    const doomed = await registerUser(t.app, 'Doomed')
    const socket = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: doomed.token })
    await socket.waitFor((f) => f.type === 'ready')
    const del = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/me',
      headers: doomed.auth,
      payload: { password: doomed.password },
    })
    expect(del.statusCode).toBe(204)
    expect((await me(`Bearer ${doomed.token}`)).statusCode).toBe(401)
    const refresh = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      payload: { refresh_token: doomed.refresh },
    })
    expect(refresh.statusCode).toBe(401)
    const login = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { email: doomed.email, password: doomed.password },
    })
    expect(login.statusCode).toBe(401)
    expect((await TestSocket.refusal(`${t.url}/api/v1/chat/ws`, { token: doomed.token })).status).toBe(401)
    // A socket opened before the deletion is closed at once.
    expect((await socket.waitClose()).code).toBe(4403)
  })

  it("does not let a deactivated user's open socket renew itself", async () => {
    const parked = await registerUser(t.app, 'Parked')
    const socket = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: parked.token })
    await socket.waitFor((f) => f.type === 'ready')
    // Deactivated by an operator in the database: no event reaches the socket.
    await t.database.db.update(users).set({ isActive: false }).where(eq(users.id, parked.id))
    const from = socket.frames.length
    socket.send({ type: 'auth', access_token: parked.token })
    expect((await socket.waitFor((f) => f.type === 'error', { from })).code).toBe('unauthorized')
    socket.close()
  })

  const refresh = (token: string) =>
    t.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: { refresh_token: token } })
  const login = async (u: TestUser) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { email: u.email, password: u.password },
    })
    expect(res.statusCode).toBe(200)
    return res.json() as { access_token: string; refresh_token: string }
  }

  it('reusing a spent refresh token revokes its whole family, and only that family', async () => {
    const u = await registerUser(t.app, 'Rotating')
    const otherSession = await login(u)
    const first = await refresh(u.refresh)
    expect(first.statusCode).toBe(200)
    const second = first.json().refresh_token as string
    // The thief replays the spent token: refused, and the legitimate successor dies with it.
    expect((await refresh(u.refresh)).statusCode).toBe(401)
    expect((await refresh(second)).statusCode).toBe(401)
    // Another login of the same user is another family.
    expect((await refresh(otherSession.refresh_token)).statusCode).toBe(200)
    // An access token is not a refresh token.
    expect((await refresh(otherSession.access_token)).statusCode).toBe(401)
  })

  it('logout revokes the refresh token and every token rotated from the same login', async () => {
    const u = await registerUser(t.app, 'Leaving')
    const otherSession = await login(u)
    const rotated = (await refresh(u.refresh)).json().refresh_token as string
    const logout = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/logout',
      payload: { refresh_token: rotated },
    })
    expect(logout.statusCode).toBe(204)
    expect((await refresh(rotated)).statusCode).toBe(401)
    expect((await refresh(u.refresh)).statusCode).toBe(401)
    expect((await refresh(otherSession.refresh_token)).statusCode).toBe(200)
  })
})
