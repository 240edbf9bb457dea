import { eq } from 'drizzle-orm'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { messages } from '../../src/store/schema.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { directChat } from '../helpers/ws-client.js'
import {
  deepJsonText,
  fuzzRuns,
  hostileBody,
  hostileString,
  invalidBody,
  roundTripText,
  toJson,
} from './arbitraries.js'
import {
  buildWorld,
  type Operation,
  openApi,
  operations,
  resolve,
  type Schema,
  type World,
} from './fixtures.js'

type Res = Awaited<ReturnType<TestApp['app']['inject']>>

/**
 * The tests that fuzz every operation in turn grow with the API (each new route adds its runs):
 * they get more than the default 30 s, which a loaded machine exceeds while nothing is wrong.
 */
const PER_OPERATION_TIMEOUT_MS = 180_000

/** A refusal must be a 4xx problem document; anything at or above 500 is a crash. */
function expectClientError(res: Res, where: string) {
  expect(res.statusCode, `${where}: ${res.body.slice(0, 300)}`).toBeGreaterThanOrEqual(400)
  expect(res.statusCode, `${where}: ${res.body.slice(0, 300)}`).toBeLessThan(500)
  expect(res.headers['content-type'], where).toMatch(/^application\/problem\+json/)
  expect(res.json().status, where).toBe(res.statusCode)
}

function expectNoCrash(res: Res, where: string) {
  expect(res.statusCode, `${where}: ${res.body.slice(0, 300)}`).toBeLessThan(500)
  if (res.statusCode >= 400) expectClientError(res, where)
}

describe('REST fuzzing: every request body of the OpenAPI document', {
  timeout: PER_OPERATION_TIMEOUT_MS,
}, () => {
  let t: TestApp
  let w: World
  let doc: Awaited<ReturnType<typeof openApi>>
  let bodyOps: { op: Operation; schema: Schema }[]

  beforeAll(async () => {
    t = await startTestApp({ env: { WS_MAX_VIOLATIONS: '1000' } })
    w = await buildWorld(t)
    doc = await openApi(t.app)
    bodyOps = operations(doc)
      .filter((op) => op.requestBody)
      .map((op) => {
        const media = op.requestBody?.content['application/json']
        if (!media) throw new Error(`${op.key}: no JSON body schema`)
        return { op, schema: resolve(doc, media.schema) }
      })
  })
  afterAll(async () => t?.close())

  /** Real ids in the path, the owner's token: only the body decides the answer. */
  const urlOf = (path: string) =>
    path
      .replace('/messages/{id}', `/messages/${w.message}`)
      .replace('/attachments/{id}', `/attachments/${w.attachment}`)
      .replace('/users/{id}', `/users/${w.member.id}`)
      .replace('{id}', w.group)
      .replace('{user_id}', w.other.id)

  const send = (op: Operation, payload: string, headers: Record<string, string> = {}) =>
    t.app.inject({
      method: op.method as 'POST',
      url: urlOf(op.path),
      headers: { ...w.owner.auth, 'content-type': 'application/json', ...headers },
      payload,
    })

  const healthy = async () => expect((await t.app.inject('/health')).statusCode).toBe(200)

  it('covers every route with a body', () => {
    expect(bodyOps.map((b) => b.op.key)).toEqual(
      expect.arrayContaining([
        'POST /api/v1/auth/register',
        'POST /api/v1/auth/login',
        'POST /api/v1/chat/conversations/{id}/messages',
        'PATCH /api/v1/users/me',
      ]),
    )
    expect(bodyOps.length).toBeGreaterThanOrEqual(14)
  })

  it('a body no schema accepts (wrong types, too long, missing fields, __proto__, 2^53+1, deep nesting) gets a 4xx', async () => {
    for (const { op, schema } of bodyOps) {
      await fc.assert(
        fc.asyncProperty(invalidBody(schema, { uuid: w.other.id }), async (body) => {
          expectClientError(await send(op, toJson(body)), op.key)
        }),
        fuzzRuns(25),
      )
    }
    await healthy()
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('well-typed hostile values (NUL, lone surrogates, bidi, huge) never cause a 5xx', async () => {
    for (const { op, schema } of bodyOps) {
      await fc.assert(
        fc.asyncProperty(hostileBody(schema, { uuid: w.other.id }), async (body) => {
          expectNoCrash(await send(op, toJson(body)), op.key)
        }),
        fuzzRuns(25),
      )
    }
    await healthy()
    // The owner can still sign in: no fuzzed body changed the password or deleted the account.
    const login = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { email: w.owner.email, password: w.owner.password },
    })
    expect(login.statusCode).toBe(200)
  })

  it('text PostgreSQL cannot store (NUL, lone surrogates) is refused with 422 wherever a user sends text', async () => {
    const bad = ['a\u0000b', 'a\uD800b', '\uDC00']
    for (const v of bad) {
      const cases: [string, string, object][] = [
        [
          'POST',
          '/api/v1/auth/register',
          { email: `x${v}@example.com`, password: 'Sup3r-secret!', full_name: 'X' },
        ],
        [
          'POST',
          '/api/v1/auth/register',
          { email: `${crypto.randomUUID()}@example.com`, password: 'Sup3r-secret!', full_name: v },
        ],
        ['PATCH', '/api/v1/users/me', { full_name: v }],
        ['PATCH', '/api/v1/users/me', { email: `x${v}@example.com`, current_password: w.owner.password }],
        ['POST', '/api/v1/chat/groups', { title: v }],
        ['PATCH', `/api/v1/chat/conversations/${w.group}`, { title: v }],
        ['POST', `/api/v1/chat/conversations/${w.group}/messages`, { content: v }],
        ['POST', `/api/v1/chat/conversations/${w.group}/messages`, { content: 'ok', client_msg_id: v }],
        ['PATCH', `/api/v1/chat/messages/${w.message}`, { content: v }],
      ]
      for (const [method, url, body] of cases) {
        const res = await t.app.inject({
          method: method as 'POST',
          url,
          headers: w.owner.auth,
          payload: body,
        })
        expect(res.statusCode, `${method} ${url} ${JSON.stringify(body)}`).toBe(422)
      }
      const search = await t.app.inject({
        url: `/api/v1/users?query=${encodeURIComponent(v.toWellFormed()).replace('%EF%BF%BD', '%00')}`,
        headers: w.owner.auth,
      })
      expect(search.statusCode).toBe(422)
      // At login such an address matches no account: the same 401 as any unknown email.
      const login = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: { email: `${w.owner.email}${v}`, password: w.owner.password },
      })
      expect(login.statusCode).toBe(401)
    }
  })

  it('raw bytes that are not JSON, truncated JSON, deep nesting and wrong media types get a 4xx', async () => {
    const raw = fc.oneof(
      fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b)),
      fc.string({ unit: 'binary', maxLength: 50 }).map((s) => `{"content": ${s}`),
      fc.constantFrom('', '{', '{"a":1}}', '[1,2', 'nul', '{"a":"\\ud800"', '\uFEFF{"a":', 'NaN', '{"a":01}'),
      deepJsonText,
    )
    for (const { op } of bodyOps) {
      await fc.assert(
        fc.asyncProperty(raw, async (payload) => {
          expectClientError(await send(op, payload as string), op.key)
        }),
        fuzzRuns(15),
      )
      for (const type of ['text/plain', 'application/xml', 'multipart/form-data; boundary=x']) {
        expectClientError(await send(op, '{}', { 'content-type': type }), `${op.key} as ${type}`)
      }
    }
    await healthy()
  })

  it('form-encoded login bodies with hostile fields never cause a 5xx', async () => {
    const field = fc.oneof(hostileString, fc.string({ maxLength: 20 }))
    await fc.assert(
      fc.asyncProperty(
        fc.dictionary(fc.constantFrom('username', 'password', 'email', '__proto__'), field),
        async (f) => {
          const res = await t.app.inject({
            method: 'POST',
            url: '/api/v1/auth/login',
            headers: { 'content-type': 'application/x-www-form-urlencoded' },
            payload: new URLSearchParams(
              Object.entries(f).map(([k, v]): [string, string] => [k, v.toWellFormed()]),
            ).toString(),
          })
          expectNoCrash(res, 'form login')
          expect(res.statusCode).not.toBe(200)
        },
      ),
      fuzzRuns(40),
    )
  })

  it('hostile query strings and path parameters never cause a 5xx', async () => {
    const gets = operations(doc).filter((op) => op.method === 'GET' && op.path.startsWith('/api/'))
    const piece = fc.oneof(
      hostileString.map((s) => encodeURIComponent(s.toWellFormed())),
      fc.constantFrom('%ED%A0%80', '%00', '%', '%zz', '..%2F..', 'eyJ9', 'eyJhZnRlciI6LTF9', '__proto__'),
    )
    for (const op of gets) {
      const names = (op.parameters ?? []).filter((p) => p.in === 'query').map((p) => p.name)
      await fc.assert(
        fc.asyncProperty(
          fc.constantFrom(...names, 'cursor', 'limit'),
          piece,
          piece,
          async (name, value, id) => {
            const path = op.path.includes('{') ? op.path.replace(/\{[^}]+\}/g, id) : op.path
            for (const url of [`${urlOf(op.path)}?${name}=${value}`, path]) {
              expectNoCrash(await t.app.inject({ url, headers: w.owner.auth }), `GET ${url}`)
            }
          },
        ),
        fuzzRuns(20),
      )
    }
    await healthy()
  })

  it('hostile Authorization headers get a 401, never a 5xx', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(fc.string({ unit: 'binary-ascii', maxLength: 300 }), fc.base64String({ maxLength: 200 })),
        async (token) => {
          const value = `Bearer ${token.replace(/[\r\n\0]/g, '')}`
          const res = await t.app.inject({ url: '/api/v1/auth/me', headers: { authorization: value } })
          expect(res.statusCode, value).toBe(401)
        },
      ),
      fuzzRuns(60),
    )
  })
})

describe.each(DRIVERS)('stored text round-trips byte for byte over REST on %s', (driver) => {
  let t: TestApp
  let a: TestUser
  let conv: string
  beforeAll(async () => {
    t = await startTestApp({ driver })
    a = await registerUser(t.app, 'Writer')
    conv = await directChat(t.app, a, await registerUser(t.app, 'Reader'))
  })
  afterAll(async () => t?.close())

  it('emoji, RTL, combining marks and astral characters come back exactly as sent (after trim)', async () => {
    await fc.assert(
      fc.asyncProperty(roundTripText, async (text) => {
        const expected = text.trim()
        const sent = await t.app.inject({
          method: 'POST',
          url: `/api/v1/chat/conversations/${conv}/messages`,
          headers: a.auth,
          payload: { content: text },
        })
        expect(sent.statusCode).toBe(201)
        const { id, seq } = sent.json() as { id: string; seq: number }
        expect(sent.json().content).toBe(expected)
        const page = await t.app.inject({
          url: `/api/v1/chat/conversations/${conv}/messages?after_seq=${seq - 1}&limit=1`,
          headers: a.auth,
        })
        expect(page.json().items[0].content).toBe(expected)
        const [row] = await t.database.db.select().from(messages).where(eq(messages.id, id))
        expect(Buffer.from(row?.content ?? '', 'utf8').equals(Buffer.from(expected, 'utf8'))).toBe(true)
      }),
      fuzzRuns(40),
    )
  })
})
