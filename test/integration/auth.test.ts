import { randomBytes } from 'node:crypto'
import { eq } from 'drizzle-orm'
import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { refreshTokens } from '../../src/store/schema.js'
import { DRIVERS, registerUser, startTestApp, type TestApp } from '../helpers/app.js'

const PASSWORD = 'Sup3r-secret!'
const uniqueEmail = (tag: string) => `${tag}.${randomBytes(6).toString('hex')}@example.com`

describe.each(DRIVERS)('auth on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
  })
  afterAll(async () => t?.close())

  const post = (url: string, payload: object) =>
    t.app.inject({ method: 'POST', url: `/api/v1${url}`, payload })
  const loginJson = (email: string, password: string) => post('/auth/login', { email, password })
  const refresh = (token: string) => post('/auth/refresh', { refresh_token: token })
  const me = (accessToken: string) =>
    t.app.inject({ url: '/api/v1/auth/me', headers: { authorization: `Bearer ${accessToken}` } })
  // What Swagger UI's Authorize button sends: the OAuth2 password grant as a form.
  const loginForm = (username: string, password: string) =>
    t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'password', username, password, scope: '' }).toString(),
    })

  function expectTokenPair(res: LightMyRequestResponse, status = 200) {
    expect(res.statusCode, res.body).toBe(status)
    const body = res.json()
    expect(body).toMatchObject({ token_type: 'bearer', expires_in: 900 })
    expect(body.access_token).toEqual(expect.any(String))
    expect(body.refresh_token).toEqual(expect.any(String))
    return body as { access_token: string; refresh_token: string }
  }

  it('register → login (form) → login (JSON) → me → refresh → logout', async () => {
    const email = uniqueEmail('flow')
    const reg = await post('/auth/register', { email, password: PASSWORD, full_name: 'Flow User' })
    const registered = expectTokenPair(reg, 201)
    const user = reg.json().user
    expect(user).toMatchObject({ email, full_name: 'Flow User', is_active: true, is_superuser: false })
    expect(user).not.toHaveProperty('password_hash')

    const form = expectTokenPair(await loginForm(email, PASSWORD))
    const json = expectTokenPair(await loginJson(email, PASSWORD))
    for (const token of [registered.access_token, form.access_token, json.access_token]) {
      const res = await me(token)
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({ id: user.id, email })
    }

    const next = expectTokenPair(await refresh(json.refresh_token))
    expect(next.refresh_token).not.toBe(json.refresh_token)
    expect((await me(next.access_token)).json().id).toBe(user.id)

    const out = await post('/auth/logout', { refresh_token: next.refresh_token })
    expect(out.statusCode).toBe(204)
    expect(out.body).toBe('')
    expect((await refresh(next.refresh_token)).statusCode).toBe(401)
    // Logout ends that login only: the form login's family still refreshes.
    expectTokenPair(await refresh(form.refresh_token))
  })

  it("refreshes with the OAuth2 refresh grant as a form (the security scheme's refreshUrl)", async () => {
    const u = await registerUser(t.app, 'FormRefresh')
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      payload: new URLSearchParams({ grant_type: 'refresh_token', refresh_token: u.refresh }).toString(),
    })
    const pair = expectTokenPair(res)
    expect((await me(pair.access_token)).statusCode).toBe(200)
  })

  it('rotates refresh tokens: a spent token is refused', async () => {
    const u = await registerUser(t.app, 'Rotate')
    expectTokenPair(await refresh(u.refresh))
    const again = await refresh(u.refresh)
    expect(again.statusCode).toBe(401)
    expect(again.headers['content-type']).toContain('application/problem+json')
  })

  it('presenting a rotated token revokes the whole family, newest token included', async () => {
    const u = await registerUser(t.app, 'Reuse')
    const second = expectTokenPair(await refresh(u.refresh))
    const third = expectTokenPair(await refresh(second.refresh_token))
    // An attacker replays the first token: it is refused and the legitimate newest one dies with it.
    expect((await refresh(u.refresh)).statusCode).toBe(401)
    expect((await refresh(third.refresh_token)).statusCode).toBe(401)
  })

  it('two concurrent refreshes of one token: exactly one succeeds', async () => {
    const u = await registerUser(t.app, 'Racer')
    const results = await Promise.all([refresh(u.refresh), refresh(u.refresh)])
    expect(results.map((r) => r.statusCode).sort()).toEqual([200, 401])
  })

  it('refuses an expired refresh token', async () => {
    const u = await registerUser(t.app, 'Expired')
    // Ages the token in place: the 60 s minimum TTL is too long to wait for.
    await t.database.db
      .update(refreshTokens)
      .set({ expiresAt: new Date(Date.now() - 1000) })
      .where(eq(refreshTokens.userId, u.id))
    expect((await refresh(u.refresh)).statusCode).toBe(401)
  })

  it('reuse detection revokes only that family, not the user’s other logins', async () => {
    const u = await registerUser(t.app, 'Families')
    const other = expectTokenPair(await loginJson(u.email, u.password))
    expectTokenPair(await refresh(u.refresh))
    expect((await refresh(u.refresh)).statusCode).toBe(401)
    expectTokenPair(await refresh(other.refresh_token))
  })

  it('logout revokes the family, including tokens rotated from it, and is idempotent', async () => {
    const u = await registerUser(t.app, 'Logout')
    const rotated = expectTokenPair(await refresh(u.refresh))
    // Logging out with the spent ancestor still ends the family it belongs to.
    expect((await post('/auth/logout', { refresh_token: u.refresh })).statusCode).toBe(204)
    expect((await refresh(rotated.refresh_token)).statusCode).toBe(401)
    expect((await post('/auth/logout', { refresh_token: u.refresh })).statusCode).toBe(204)
    expect((await post('/auth/logout', { refresh_token: 'never-issued' })).statusCode).toBe(204)
  })

  it('an access token is never accepted as a refresh token', async () => {
    const u = await registerUser(t.app, 'Confused')
    const res = await refresh(u.token)
    expect(res.statusCode).toBe(401)
    expect(res.headers['www-authenticate']).toBe('Bearer')
  })

  it('trims and lower-cases the email at registration and login', async () => {
    const email = uniqueEmail('mixed.case')
    const res = await post('/auth/register', {
      email: `  ${email.toUpperCase()} `,
      password: PASSWORD,
      full_name: 'Mixed Case',
    })
    expect(res.statusCode).toBe(201)
    expect(res.json().user.email).toBe(email)
    expectTokenPair(await loginJson(` ${email.toUpperCase()}`, PASSWORD))
    expectTokenPair(await loginForm(email.toUpperCase(), PASSWORD))
  })

  it('refuses a duplicate email with 409, whatever its case', async () => {
    const u = await registerUser(t.app, 'Dup')
    for (const email of [u.email, u.email.toUpperCase()]) {
      const res = await post('/auth/register', { email, password: PASSWORD, full_name: 'Dup Again' })
      expect(res.statusCode).toBe(409)
      expect(res.headers['content-type']).toContain('application/problem+json')
      expect(res.json()).toMatchObject({ status: 409, type: '/problems/conflict' })
    }
  })

  // Each password breaks exactly one rule, so the response must name that rule alone.
  it.each([
    ['Sh0rt!x', 'must be at least 8 characters'],
    [`Aa1!${'x'.repeat(125)}`, 'must be at most 128 characters'],
    ['lower-case-1', 'must contain an upper-case letter'],
    ['UPPER-CASE-1', 'must contain a lower-case letter'],
    ['No-Digits-Here', 'must contain a digit'],
    ['NoSpecial123', 'must contain a special character'],
  ])('password %j fails with 422 naming the rule "%s"', async (password, rule) => {
    const res = await post('/auth/register', {
      email: uniqueEmail('weak'),
      password,
      full_name: 'Weak Password',
    })
    expect(res.statusCode).toBe(422)
    expect(res.headers['content-type']).toContain('application/problem+json')
    const body = res.json()
    expect(body).toMatchObject({
      status: 422,
      title: expect.any(String),
      type: '/problems/validation_failed',
    })
    expect(body.errors).toEqual([{ path: '/body/password', message: rule }])
    expect(body.detail).toContain(rule)
  })

  it('unknown email and wrong password get the same 401', async () => {
    const u = await registerUser(t.app, 'Secretive')
    const unknown = await loginJson(uniqueEmail('nobody'), PASSWORD)
    const wrong = await loginJson(u.email, 'Wr0ng-password!')
    const wrongForm = await loginForm(u.email, 'Wr0ng-password!')
    for (const res of [unknown, wrong, wrongForm]) {
      expect(res.statusCode).toBe(401)
      expect(res.headers['www-authenticate']).toBe('Bearer')
      expect(res.headers['content-type']).toContain('application/problem+json')
    }
    expect(wrong.json()).toEqual(unknown.json())
    expect(wrongForm.json()).toEqual(unknown.json())
  })

  it('an unknown email costs a password verification too (no timing oracle)', async () => {
    const u = await registerUser(t.app, 'Timing')
    const timed = async (email: string) => {
      const start = performance.now()
      expect((await loginJson(email, 'Wr0ng-password!')).statusCode).toBe(401)
      return performance.now() - start
    }
    const unknown: number[] = []
    const wrong: number[] = []
    // Interleaved and compared by median, so load on the shared machine hits both sides alike.
    for (let i = 0; i < 7; i++) {
      unknown.push(await timed(uniqueEmail('ghost')))
      wrong.push(await timed(u.email))
    }
    const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[3] as number
    // Without the dummy verify an unknown email answers in a few ms against tens for argon2id.
    expect(median(unknown)).toBeGreaterThan(median(wrong) * 0.4)
  })

  it('401 responses carry WWW-Authenticate: Bearer', async () => {
    const missing = await t.app.inject({ url: '/api/v1/auth/me' })
    const garbage = await me('not-a-jwt')
    const basic = await t.app.inject({ url: '/api/v1/auth/me', headers: { authorization: 'Basic dTpw' } })
    for (const res of [missing, garbage, basic]) {
      expect(res.statusCode).toBe(401)
      expect(res.headers['www-authenticate']).toBe('Bearer')
      expect(res.json()).toMatchObject({ status: 401, title: 'Unauthorized', type: '/problems/unauthorized' })
    }
  })
})
