import { eq } from 'drizzle-orm'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { users } from '../../src/store/schema.js'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { fuzzRuns, hostileBody, hostileString, invalidBody, toJson } from './arbitraries.js'
import { openApi, operations, resolve, type Schema } from './fixtures.js'

/**
 * The operators' routes (`/api/v1/admin/...`) fuzzed as an operator, so bodies and path
 * parameters reach the handlers (fuzz-rest.test.ts calls every route as a plain user, whom these
 * routes refuse with 403 before reading anything).
 */
describe('REST fuzzing of the admin routes, as an operator', () => {
  let t: TestApp
  let operator: TestUser
  let admin: { key: string; method: string; path: string; schema: Schema | undefined }[]

  beforeAll(async () => {
    t = await startTestApp()
    operator = await registerUser(t.app, 'Operator')
    await t.database.db.update(users).set({ role: 'operator' }).where(eq(users.id, operator.id))
    const doc = await openApi(t.app)
    admin = operations(doc)
      .filter((op) => op.path.startsWith('/api/v1/admin/'))
      .map((op) => {
        const media = op.requestBody?.content['application/json']
        return { key: op.key, method: op.method, path: op.path, schema: media && resolve(doc, media.schema) }
      })
  })
  afterAll(async () => t?.close())

  const send = (method: string, url: string, payload?: string) =>
    t.app.inject({
      method: method as 'POST',
      url,
      headers: { ...operator.auth, ...(payload !== undefined ? { 'content-type': 'application/json' } : {}) },
      ...(payload !== undefined ? { payload } : {}),
    })

  const noCrash = (res: Awaited<ReturnType<typeof send>>, where: string) => {
    expect(res.statusCode, `${where}: ${res.body.slice(0, 300)}`).toBeLessThan(500)
    if (res.statusCode >= 400) {
      expect(res.headers['content-type'], where).toMatch(/^application\/problem\+json/)
    }
  }

  it('covers the webhook routes', () => {
    expect(admin.map((a) => a.key)).toEqual(
      expect.arrayContaining([
        'POST /api/v1/admin/webhooks',
        'GET /api/v1/admin/webhooks',
        'DELETE /api/v1/admin/webhooks/{id}',
        'POST /api/v1/admin/webhooks/{id}/test',
      ]),
    )
  })

  it('bodies no schema accepts get a 4xx; well-typed hostile ones never a 5xx', async () => {
    for (const { key, method, path, schema } of admin) {
      if (!schema) continue
      await fc.assert(
        fc.asyncProperty(invalidBody(schema, { uuid: operator.id }), async (body) => {
          const res = await send(method, path, toJson(body))
          expect(res.statusCode, `${key}: ${res.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400)
          noCrash(res, key)
        }),
        fuzzRuns(40),
      )
      await fc.assert(
        fc.asyncProperty(hostileBody(schema, { uuid: operator.id }), async (body) => {
          noCrash(await send(method, path, toJson(body)), key)
        }),
        fuzzRuns(40),
      )
    }
  })

  it('hostile URLs, secrets and path parameters never cause a 5xx', async () => {
    const url = fc.oneof(
      hostileString,
      fc.webUrl({ withQueryParameters: true, withFragments: true }),
      fc.constantFrom(
        'http://[::ffff:7f00:1]/',
        'http://0177.0.0.1/',
        'http://[fe80::1%25eth0]/',
        'https://0/',
        'http://%00/',
        `http://${'a'.repeat(2000)}.example/`,
      ),
    )
    await fc.assert(
      fc.asyncProperty(url, fc.option(hostileString), async (u, secret) => {
        const res = await send(
          'POST',
          '/api/v1/admin/webhooks',
          toJson({ url: u, ...(secret ? { secret } : {}) }),
        )
        noCrash(res, `POST webhooks ${JSON.stringify(u).slice(0, 80)}`)
        if (res.statusCode === 201) await send('DELETE', `/api/v1/admin/webhooks/${res.json().id}`)
      }),
      fuzzRuns(80),
    )
    await fc.assert(
      fc.asyncProperty(hostileString, async (id) => {
        // Every byte percent-encoded (encodeURIComponent throws on lone surrogates).
        const p = [...Buffer.from(id)].map((b) => `%${b.toString(16).padStart(2, '0')}`).join('')
        noCrash(await send('DELETE', `/api/v1/admin/webhooks/${p}`), 'DELETE webhooks/{id}')
        noCrash(await send('POST', `/api/v1/admin/webhooks/${p}/test`), 'POST webhooks/{id}/test')
      }),
      fuzzRuns(40),
    )
    expect((await t.app.inject('/health')).statusCode).toBe(200)
  })
})
