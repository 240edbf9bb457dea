import { randomUUID } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { decodeJwt, decodeProtectedHeader, type JWTPayload, SignJWT, UnsecuredJWT } from 'jose'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { users } from '../../src/store/schema.js'
import {
  DRIVERS,
  registerUser,
  startTestApp,
  TEST_KID,
  TEST_SECRET,
  type TestApp,
  type TestUser,
} from '../helpers/app.js'

const now = () => Math.floor(Date.now() / 1000)
const b64 = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url')

/** The claims the service itself signs; each test changes one thing and expects a refusal. */
const goodClaims = (sub: string): JWTPayload => ({
  typ: 'access',
  sub,
  iss: 'chat-api',
  aud: 'chat-api',
  iat: now(),
  exp: now() + 900,
  jti: randomUUID(),
})

async function forge(
  claims: JWTPayload,
  opts: { secret?: string; alg?: string; omit?: string[] } = {},
): Promise<string> {
  const payload = { ...claims }
  for (const name of opts.omit ?? []) delete payload[name]
  return new SignJWT(payload)
    .setProtectedHeader({ alg: opts.alg ?? 'HS256', typ: 'JWT', kid: TEST_KID })
    .sign(new TextEncoder().encode(opts.secret ?? TEST_SECRET))
}

describe.each(DRIVERS)('access tokens on %s', (driver) => {
  let t: TestApp
  let u: TestUser
  beforeAll(async () => {
    t = await startTestApp({ driver })
    u = await registerUser(t.app, 'Holder')
  })
  afterAll(async () => t?.close())

  const me = (token: string) =>
    t.app.inject({ url: '/api/v1/auth/me', headers: { authorization: `Bearer ${token}` } })

  async function expectRefused(token: string, detail?: string) {
    const res = await me(token)
    expect(res.statusCode, res.body).toBe(401)
    expect(res.headers['www-authenticate']).toBe('Bearer')
    expect(res.headers['content-type']).toContain('application/problem+json')
    if (detail) expect(res.json().detail).toBe(detail)
  }

  it('carries sub, iat, exp, iss, aud and jti, signed with HS256', async () => {
    const claims = decodeJwt(u.token)
    expect(claims).toMatchObject({ sub: u.id, iss: 'chat-api', aud: 'chat-api', typ: 'access' })
    expect(claims.jti).toMatch(/^[0-9a-f-]{36}$/)
    expect(claims.iat).toBeLessThanOrEqual(now())
    expect((claims.exp as number) - (claims.iat as number)).toBe(900)
    expect(decodeProtectedHeader(u.token).alg).toBe('HS256')
    const other = await registerUser(t.app, 'Other')
    expect(decodeJwt(other.token).jti).not.toBe(claims.jti)
  })

  // Guards the tests below: a refusal must come from the one claim they change, not from forge().
  it('accepts a token forged exactly like the service signs them', async () => {
    const res = await me(await forge(goodClaims(u.id)))
    expect(res.statusCode).toBe(200)
    expect(res.json().id).toBe(u.id)
  })

  it('refuses a tampered payload (signature kept)', async () => {
    const victim = await registerUser(t.app, 'Victim')
    const [header, , signature] = u.token.split('.')
    const payload = { ...decodeJwt(u.token), sub: victim.id }
    await expectRefused(`${header}.${b64(payload)}.${signature}`, 'invalid access token')
  })

  it('refuses a tampered signature', async () => {
    const [header, payload, signature = ''] = u.token.split('.')
    const flipped = (signature[0] === 'A' ? 'B' : 'A') + signature.slice(1)
    await expectRefused(`${header}.${payload}.${flipped}`)
  })

  it('refuses an expired token', async () => {
    const token = await forge({ ...goodClaims(u.id), iat: now() - 1000, exp: now() - 60 })
    await expectRefused(token, 'access token expired')
  })

  it('refuses alg "none"', async () => {
    const { iat: _iat, exp: _exp, ...rest } = goodClaims(u.id)
    const unsigned = new UnsecuredJWT(rest).setIssuedAt().setExpirationTime('15m').encode()
    expect(decodeProtectedHeader(unsigned).alg).toBe('none')
    await expectRefused(unsigned)
    // The same with a signature segment left in place.
    await expectRefused(`${unsigned}${u.token.split('.')[2]}`)
  })

  it('refuses another HMAC algorithm with the right secret (algorithm pinned)', async () => {
    await expectRefused(await forge(goodClaims(u.id), { alg: 'HS512' }))
  })

  it('refuses a token signed with another secret', async () => {
    await expectRefused(await forge(goodClaims(u.id), { secret: `${TEST_SECRET}-but-not-ours` }))
  })

  it('refuses a wrong audience', async () => {
    await expectRefused(await forge({ ...goodClaims(u.id), aud: 'someone-else' }))
  })

  it('refuses a wrong issuer', async () => {
    await expectRefused(await forge({ ...goodClaims(u.id), iss: 'https://evil.example' }))
  })

  it('refuses a token not valid yet (nbf in the future)', async () => {
    await expectRefused(await forge({ ...goodClaims(u.id), nbf: now() + 600 }))
  })

  it('refuses a token issued in the future', async () => {
    await expectRefused(await forge({ ...goodClaims(u.id), iat: now() + 600, exp: now() + 1500 }))
  })

  it('refuses a token older than the access TTL even when its exp is far away', async () => {
    await expectRefused(await forge({ ...goodClaims(u.id), iat: now() - 3600, exp: now() + 86400 }))
  })

  it.each(['sub', 'exp', 'iat', 'jti'])('refuses a token without %s', async (claim) => {
    await expectRefused(await forge(goodClaims(u.id), { omit: [claim] }))
  })

  it('refuses a signed token that is not an access token', async () => {
    await expectRefused(await forge({ ...goodClaims(u.id), typ: 'refresh' }), 'not an access token')
  })

  it('refuses the token of a deleted user, and its refresh token', async () => {
    const gone = await registerUser(t.app, 'Leaver')
    expect((await me(gone.token)).statusCode).toBe(200)
    const del = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/me',
      headers: gone.auth,
      payload: { password: gone.password },
    })
    expect(del.statusCode).toBe(204)
    await expectRefused(gone.token, 'account is deleted or deactivated')
    const refresh = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      payload: { refresh_token: gone.refresh },
    })
    expect(refresh.statusCode).toBe(401)
  })

  it('refuses the token of a deactivated user', async () => {
    const off = await registerUser(t.app, 'Suspended')
    // What an operator does to suspend an account.
    await t.database.db.update(users).set({ isActive: false }).where(eq(users.id, off.id))
    await expectRefused(off.token, 'account is deleted or deactivated')
  })

  it('refuses a token for a user id that never existed', async () => {
    await expectRefused(await forge(goodClaims(randomUUID())))
  })
})
