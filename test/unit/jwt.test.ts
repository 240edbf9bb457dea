import { decodeJwt, decodeProtectedHeader, type JWTPayload, SignJWT, UnsecuredJWT } from 'jose'
import { describe, expect, it } from 'vitest'
import { AccessTokens, type JwtSettings, keyId } from '../../src/auth/jwt.js'
import { UnauthorizedError } from '../../src/errors.js'

const SECRET = 'unit-test-secret-that-is-long-enough-0123456789'
const SETTINGS: JwtSettings = {
  secrets: [SECRET],
  issuer: 'chat-api-test',
  audience: 'chat-clients-test',
  accessTtlSec: 600,
}
const KEY = new TextEncoder().encode(SECRET)
const KID = keyId(SECRET)
const USER = '0190a8c4-0000-7000-8000-000000000001'
const now = () => Math.floor(Date.now() / 1000)

/** The claims `sign` puts in a token, valid now; `extra` overrides or (with undefined) removes. */
function claims(extra: Record<string, unknown> = {}): JWTPayload {
  const base: Record<string, unknown> = {
    typ: 'access',
    sub: USER,
    iss: SETTINGS.issuer,
    aud: SETTINGS.audience,
    iat: now(),
    exp: now() + SETTINGS.accessTtlSec,
    jti: crypto.randomUUID(),
    ...extra,
  }
  return Object.fromEntries(Object.entries(base).filter(([, v]) => v !== undefined)) as JWTPayload
}

const forge = (payload: JWTPayload, alg = 'HS256', key: Uint8Array = KEY, kid: string | null = KID) =>
  new SignJWT(payload).setProtectedHeader({ alg, typ: 'JWT', ...(kid === null ? {} : { kid }) }).sign(key)

/** The message `verify` refuses a token with (fails the test if it accepts). */
async function refusal(tokens: AccessTokens, token: string): Promise<string> {
  const err = await tokens.verify(token).then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(err).toBeInstanceOf(UnauthorizedError)
  return (err as UnauthorizedError).message
}

describe('AccessTokens', () => {
  const tokens = new AccessTokens(SETTINGS)

  it('signs an HS256 JWT with the settings’ issuer, audience and TTL, a jti and typ "access"', async () => {
    const before = now()
    const token = await tokens.sign(USER)
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'HS256', typ: 'JWT', kid: KID })
    const payload = decodeJwt(token)
    expect(payload).toMatchObject({ typ: 'access', sub: USER, iss: SETTINGS.issuer, aud: SETTINGS.audience })
    expect(payload.iat).toBeGreaterThanOrEqual(before)
    expect(payload.exp).toBe((payload.iat as number) + 600)
    expect(payload.jti).toMatch(/^[0-9a-f-]{36}$/)
    expect(decodeJwt(await tokens.sign(USER)).jti).not.toBe(payload.jti)
    expect(tokens.ttlSec).toBe(600)
  })

  it('verifies its own token and returns sub, exp and jti', async () => {
    const token = await tokens.sign(USER)
    const payload = decodeJwt(token)
    expect(await tokens.verify(token)).toEqual({ sub: USER, exp: payload.exp, jti: payload.jti })
  })

  it('refuses a token signed with another secret, or by another issuer or for another audience', async () => {
    const other = new AccessTokens({ ...SETTINGS, secrets: [`${SECRET}-other`] })
    expect(await refusal(tokens, await other.sign(USER))).toBe('invalid access token')
    // Another secret under our kid: the kid picks our key, whose signature check fails.
    const liar = new TextEncoder().encode(`${SECRET}-other`)
    expect(await refusal(tokens, await forge(claims(), 'HS256', liar, KID))).toBe('invalid access token')
    expect(await refusal(tokens, await forge(claims({ iss: 'someone-else' })))).toBe('invalid access token')
    expect(await refusal(tokens, await forge(claims({ aud: 'another-app' })))).toBe('invalid access token')
  })

  it('picks the key by kid: a previous secret still verifies, an unlisted or missing kid is refused', async () => {
    const NEXT = 'unit-test-next-secret-that-is-long-enough-98765'
    const rotated = new AccessTokens({ ...SETTINGS, secrets: [NEXT, SECRET] })
    const fresh = await rotated.sign(USER)
    // The first secret signs.
    expect(decodeProtectedHeader(fresh).kid).toBe(keyId(NEXT))
    expect(keyId(NEXT)).not.toBe(KID)
    // Tokens of the previous secret keep working while it is listed.
    expect(await rotated.verify(await tokens.sign(USER))).toMatchObject({ sub: USER })
    // Before the rotation reaches this instance, its token names a key it does not know.
    expect(await refusal(tokens, fresh)).toBe('invalid access token')
    // Once the previous secret is dropped, its tokens are refused.
    const after = new AccessTokens({ ...SETTINGS, secrets: [NEXT] })
    expect(await refusal(after, await tokens.sign(USER))).toBe('invalid access token')
    expect(await refusal(tokens, await forge(claims(), 'HS256', KEY, null))).toBe('invalid access token')
    expect(await refusal(tokens, await forge(claims(), 'HS256', KEY, 'no-such-key'))).toBe(
      'invalid access token',
    )
  })

  it('loads its secrets once from a source, and again after a failed load', async () => {
    let calls = 0
    const loaded = new AccessTokens({
      ...SETTINGS,
      secrets: async () => {
        calls++
        if (calls === 1) throw new Error('database unavailable')
        return [SECRET]
      },
    })
    await expect(loaded.sign(USER)).rejects.toThrow('database unavailable')
    const token = await loaded.sign(USER)
    expect(await loaded.verify(token)).toMatchObject({ sub: USER })
    expect(await tokens.verify(token)).toMatchObject({ sub: USER })
    expect(calls).toBe(2)
  })

  it('accepts only HS256: another HMAC algorithm with the same secret and alg none are refused', async () => {
    expect(await tokens.verify(await forge(claims()))).toMatchObject({ sub: USER })
    expect(await refusal(tokens, await forge(claims(), 'HS512'))).toBe('invalid access token')
    expect(await refusal(tokens, await forge(claims(), 'HS384'))).toBe('invalid access token')
    expect(await refusal(tokens, new UnsecuredJWT(claims()).encode())).toBe('invalid access token')
  })

  it.each(['sub', 'exp', 'iat', 'jti'])('refuses a token without %s', async (claim) => {
    expect(await refusal(tokens, await forge(claims({ [claim]: undefined })))).toBe('invalid access token')
  })

  it('refuses a token that is not an access token (e.g. typ "refresh" or no typ)', async () => {
    expect(await refusal(tokens, await forge(claims({ typ: 'refresh' })))).toBe('not an access token')
    expect(await refusal(tokens, await forge(claims({ typ: undefined })))).toBe('not an access token')
  })

  it('says "expired" for an expired token, past the 5 s of clock tolerance only', async () => {
    const iat = now() - 100
    expect(await refusal(tokens, await forge(claims({ iat, exp: now() - 10 })))).toBe('access token expired')
    expect(await tokens.verify(await forge(claims({ iat, exp: now() - 2 })))).toMatchObject({ sub: USER })
  })

  it('refuses a token older than the TTL whatever its exp says, and one issued in the future', async () => {
    const old = claims({ iat: now() - 700, exp: now() + 3600 })
    expect(await refusal(tokens, await forge(old))).toBe('access token expired')
    const future = claims({ iat: now() + 60, exp: now() + 660 })
    expect(await refusal(tokens, await forge(future))).toBe('invalid access token')
  })

  it('refuses garbage as invalid', async () => {
    expect(await refusal(tokens, 'not.a.jwt')).toBe('invalid access token')
    expect(await refusal(tokens, '')).toBe('invalid access token')
  })

  it.each([
    ['sub', undefined],
    ['jti', undefined],
    ['iat', undefined],
    ['exp', undefined],
  ])('refuses a correctly signed token without its %s claim', async (claim) => {
    expect(await refusal(tokens, await forge(claims({ [claim]: undefined })))).toBe('invalid access token')
  })

  it.each([
    ['a sub that is not a UUID', { sub: 'not-a-uuid' }],
    ['a numeric sub', { sub: 42 }],
    ['a sub with SQL in it', { sub: "' or 1=1 --" }],
    ['a numeric jti', { jti: 7 }],
    ['an object jti', { jti: { id: 1 } }],
    ['a string exp', { exp: String(now() + 600) }],
  ])('refuses a correctly signed token with %s (401, never a database error)', async (_, extra) => {
    expect(await refusal(tokens, await forge(claims(extra)))).toBe('invalid access token')
  })

  it('accepts an upper-case UUID sub as it is (ids are lower-cased at the edges, not here)', async () => {
    const upper = USER.toUpperCase()
    expect((await tokens.verify(await forge(claims({ sub: upper })))).sub).toBe(upper)
  })
})
