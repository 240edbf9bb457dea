import { randomBytes } from 'node:crypto'
import type { LightMyRequestResponse } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  DRIVERS,
  openTestDatabase,
  registerUser,
  startTestApp,
  type TestApp,
  type TestUser,
} from '../helpers/app.js'
import { directChat } from '../helpers/ws-client.js'

/** RFC 9457: the one error shape, whatever failed. */
function expectProblem(res: LightMyRequestResponse, status: number, type?: string) {
  expect(res.statusCode, res.body).toBe(status)
  expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
  const body = res.json()
  expect(body).toMatchObject({
    type: type ?? expect.stringMatching(/^\/problems\/[a-z_]+$/),
    title: expect.any(String),
    status,
    detail: expect.any(String),
  })
  return body as { detail: string; errors?: { path: string; message: string }[] }
}

const validRegister = () => ({
  email: `${randomBytes(6).toString('hex')}@example.com`,
  password: 'Sup3r-secret!',
  full_name: 'Valid Person',
})

describe.each(DRIVERS)('problems and operations on %s', (driver) => {
  let t: TestApp
  let u: TestUser
  beforeAll(async () => {
    t = await startTestApp({ driver })
    u = await registerUser(t.app, 'Prober')
  })
  afterAll(async () => t?.close())

  const register = (payload: object) =>
    t.app.inject({ method: 'POST', url: '/api/v1/auth/register', payload })

  describe('validation errors are problem+json with field paths', () => {
    const { full_name: _omitted, ...withoutName } = validRegister()
    it.each([
      ['a missing field', withoutName, [['/body/full_name', "must have required property 'full_name'"]]],
      ['a wrong type', { ...validRegister(), password: {} }, [['/body/password', 'must be string']]],
      [
        'an extra property (no mass assignment)',
        { ...validRegister(), is_superuser: true },
        [['/body/is_superuser', 'must NOT have additional properties']],
      ],
      ['an empty string', { ...validRegister(), full_name: '' }, [['/body/full_name', expect.any(String)]]],
      [
        'an invalid email',
        { ...validRegister(), email: 'not-an-email' },
        [['/body/email', expect.any(String)]],
      ],
    ])('register with %s', async (_what, payload, expected) => {
      const body = expectProblem(await register(payload), 422, '/problems/validation_failed')
      expect(body.errors).toEqual(expected.map(([path, message]) => ({ path, message })))
      for (const [path] of expected) expect(body.detail).toContain(path)
    })

    it('reports every error at once', async () => {
      // Bodies are not type-coerced: the number 1 is not taken for the string "1".
      const body = expectProblem(await register({ password: 1, role: 'admin' }), 422)
      expect(body.errors?.map((e) => e.path).sort()).toEqual(
        ['/body/email', '/body/full_name', '/body/password', '/body/role'].sort(),
      )
    })

    it.each([
      ['limit=abc', '/querystring/limit'],
      ['limit=0', '/querystring/limit'],
      [`query=${'x'.repeat(101)}`, '/querystring/query'],
    ])('a bad query parameter (%s)', async (query, path) => {
      const res = await t.app.inject({ url: `/api/v1/users?${query}`, headers: u.auth })
      expect(expectProblem(res, 422).errors?.map((e) => e.path)).toEqual([path])
    })

    it('a bad path parameter', async () => {
      const res = await t.app.inject({ url: '/api/v1/users/123', headers: u.auth })
      expect(expectProblem(res, 422).errors?.map((e) => e.path)).toEqual(['/params/id'])
    })

    it('an extra property on PATCH /users/me', async () => {
      const res = await t.app.inject({
        method: 'PATCH',
        url: '/api/v1/users/me',
        headers: u.auth,
        payload: { is_superuser: true },
      })
      expect(expectProblem(res, 422).errors?.map((e) => e.path)).toEqual(['/body/is_superuser'])
    })

    it('a refresh without its token', async () => {
      const res = await t.app.inject({ method: 'POST', url: '/api/v1/auth/refresh', payload: {} })
      expect(expectProblem(res, 422).errors?.map((e) => e.path)).toEqual(['/body/refresh_token'])
    })

    it('a login naming no account', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: { password: 'x' },
      })
      expect(expectProblem(res, 422).errors?.map((e) => e.path)).toEqual(['/body/email'])
    })

    it('a login form without its password', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        payload: `username=${encodeURIComponent(u.email)}`,
      })
      expect(expectProblem(res, 422).errors?.map((e) => e.path)).toEqual(['/body/password'])
    })
  })

  describe('request errors', () => {
    it('malformed JSON is a 400 problem', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/register',
        headers: { 'content-type': 'application/json' },
        payload: '{"email":',
      })
      expectProblem(res, 400, '/problems/invalid_json')
    })

    it.each([
      ['a lone continuation byte', [0x80]],
      ['a truncated sequence', [0xe0, 0xa4]],
      ['an overlong encoding', [0xc0, 0xaf]],
      ['an encoded surrogate', [0xed, 0xa0, 0x80]],
      ['a byte never valid in UTF-8', [0xff]],
    ])(
      'a JSON body with invalid UTF-8 (%s) is a 400 problem, and nothing is stored',
      async (_name, bytes) => {
        const other = await registerUser(t.app, 'Other')
        const conv = await directChat(t.app, u, other)
        const url = `/api/v1/chat/conversations/${conv}/messages`
        const res = await t.app.inject({
          method: 'POST',
          url,
          headers: { ...u.auth, 'content-type': 'application/json' },
          payload: Buffer.concat([
            Buffer.from('{"content":"bad '),
            Buffer.from(bytes),
            Buffer.from(' text"}'),
          ]),
        })
        expect(expectProblem(res, 400, '/problems/invalid_json').detail).toMatch(/UTF-8/)
        const stored = await t.app.inject({ url, headers: u.auth })
        expect(stored.json().items).toEqual([])
      },
    )

    it('a JSON body in valid UTF-8 is read as sent, with or without a charset', async () => {
      const conv = await directChat(t.app, u, await registerUser(t.app, 'Other'))
      const content = 'héllo 👋 مرحبا'
      for (const type of ['application/json', 'application/json; charset=utf-8']) {
        const res = await t.app.inject({
          method: 'POST',
          url: `/api/v1/chat/conversations/${conv}/messages`,
          headers: { ...u.auth, 'content-type': type },
          payload: Buffer.from(JSON.stringify({ content })),
        })
        expect(res.statusCode, res.body).toBe(201)
        expect(res.json().content).toBe(content)
      }
    })

    it('an unsupported media type is a 415 problem', async () => {
      const res = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/register',
        headers: { 'content-type': 'application/xml' },
        payload: '<user/>',
      })
      expectProblem(res, 415, '/problems/unsupported_media_type')
    })

    it.each([
      ['application/json', (n: number) => JSON.stringify({ ...validRegister(), full_name: 'x'.repeat(n) })],
      ['application/x-www-form-urlencoded', (n: number) => `username=a%40b.co&password=${'x'.repeat(n)}`],
    ])('a %s body over BODY_LIMIT_BYTES is a 413 problem', async (contentType, body) => {
      const limit = t.services.config.bodyLimitBytes
      const res = await t.app.inject({
        method: 'POST',
        url: contentType.includes('json') ? '/api/v1/auth/register' : '/api/v1/auth/login',
        headers: { 'content-type': contentType },
        payload: body(limit),
      })
      expectProblem(res, 413, '/problems/body_too_large')
    })

    it('an unknown route is a 404 problem', async () => {
      const res = await t.app.inject({ url: '/api/v1/nothing-here?x=1' })
      const body = expectProblem(res, 404, '/problems/not_found')
      expect(body.detail).toBe('no route for GET /api/v1/nothing-here')
      // No endpoint lets anyone replace another user (the seed's PUT /users/{id}).
      expectProblem(await t.app.inject({ method: 'PUT', url: `/api/v1/users/${u.id}`, headers: u.auth }), 404)
    })
  })

  describe('operations', () => {
    it('/health answers 200', async () => {
      const res = await t.app.inject({ url: '/health' })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toEqual({ status: 'ok' })
    })

    it('/ready answers 200 while the database is up', async () => {
      const res = await t.app.inject({ url: '/ready' })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toEqual({ status: 'ready', database: 'up', broker: 'not configured' })
    })

    it('/metrics has the latency histogram by route and process metrics', async () => {
      expect((await t.app.inject({ url: '/health' })).statusCode).toBe(200)
      const stray = `/stray-${randomBytes(4).toString('hex')}`
      expect((await t.app.inject({ url: stray })).statusCode).toBe(404)
      const res = await t.app.inject({ url: '/metrics' })
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-type']).toContain('text/plain')
      expect(res.body).toContain('# TYPE http_request_duration_seconds histogram')
      expect(res.body).toMatch(
        /http_request_duration_seconds_count\{method="GET",route="\/health",status="200"\} \d+/,
      )
      expect(res.body).toMatch(/^process_cpu_seconds_total \d/m)
      // Unmatched paths share one label, so scanners cannot blow up the series count.
      expect(res.body).not.toContain(stray)
    })

    it('/metrics with METRICS_TOKEN set answers only that bearer token; others get a 401 problem', async () => {
      const token = randomBytes(24).toString('base64url')
      const guarded = await startTestApp({ env: { METRICS_TOKEN: token } })
      try {
        const get = (authorization?: string) =>
          guarded.app.inject({ url: '/metrics', headers: authorization ? { authorization } : {} })
        for (const wrong of [
          undefined,
          'Bearer',
          `Bearer ${token}x`,
          `Bearer ${token.slice(1)}`,
          `Basic ${token}`,
        ]) {
          const res = await get(wrong)
          expectProblem(res, 401, '/problems/unauthorized')
          expect(res.headers['www-authenticate']).toBe('Bearer')
          expect(res.body).not.toContain('process_cpu')
        }
        const ok = await get(`Bearer ${token}`)
        expect(ok.statusCode).toBe(200)
        expect(ok.body).toMatch(/^process_cpu_seconds_total \d/m)
        // The probes stay open: load balancers have no token.
        expect((await guarded.app.inject({ url: '/health' })).statusCode).toBe(200)
        expect((await guarded.app.inject({ url: '/ready' })).statusCode).toBe(200)
      } finally {
        await guarded.close()
      }
    })

    it('/openapi.json lists the routes, and login accepts the OAuth2 form', async () => {
      const res = await t.app.inject({ url: '/openapi.json' })
      expect(res.statusCode).toBe(200)
      const doc = res.json()
      expect(doc.openapi).toMatch(/^3\./)
      const paths = doc.paths as Record<string, Record<string, unknown>>
      const expected: [string, string][] = [
        ['/api/v1/auth/register', 'post'],
        ['/api/v1/auth/login', 'post'],
        ['/api/v1/auth/refresh', 'post'],
        ['/api/v1/auth/logout', 'post'],
        ['/api/v1/auth/me', 'get'],
        ['/api/v1/users', 'get'],
        ['/api/v1/users/{id}', 'get'],
        ['/api/v1/users/me', 'patch'],
        ['/api/v1/users/me', 'delete'],
        ['/health', 'get'],
        ['/ready', 'get'],
        ['/metrics', 'get'],
      ]
      for (const [path, method] of expected) expect(paths[path], path).toHaveProperty(method)
      const login = paths['/api/v1/auth/login']?.post as { requestBody: { content: object } }
      expect(Object.keys(login.requestBody.content)).toContain('application/x-www-form-urlencoded')
      expect(doc.components.securitySchemes.bearer.flows.password.tokenUrl).toBe('/api/v1/auth/login')
    })

    it('/docs serves the Swagger UI page', async () => {
      const res = await t.app.inject({ url: '/docs' })
      expect(res.statusCode).toBe(200)
      expect(res.headers['content-type']).toContain('text/html')
      expect(res.body).toMatch(/swagger/i)
    })
  })
})

describe.each(DRIVERS)('/ready with the database gone on %s', (driver) => {
  it('answers 503 and says which dependency is down', async () => {
    const database = await openTestDatabase(driver)
    const t = await startTestApp({ database })
    try {
      expect((await t.app.inject({ url: '/ready' })).statusCode).toBe(200)
      await database.close()
      const res = await t.app.inject({ url: '/ready' })
      expect(res.statusCode).toBe(503)
      expect(res.json()).toMatchObject({ status: 'unavailable', database: 'down' })
    } finally {
      await t.close()
    }
  })
})
