import { afterEach, describe, expect, it } from 'vitest'
import { registerUser, startTestApp, type TestApp } from '../helpers/app.js'
import type { OpenApiDocument } from '../helpers/contract.js'
import { AsyncApiContract, loadAsyncApi } from '../helpers/frame-contract.js'

/**
 * The checkers that make the suite a contract test catch what they are there for: each case
 * breaks one part of a document (as a past bug did) and drives real traffic through the app.
 */
type Doc = OpenApiDocument & { components: { schemas: Record<string, { required?: string[] }> } }
/** The parts of an operation these cases change. */
interface Op {
  parameters: { name: string; required?: boolean }[]
  requestBody: { content: Record<string, { schema: { properties: Record<string, { minLength?: number }> } }> }
  responses: Record<string, { headers?: unknown; content: Record<string, unknown> }>
}
const op = (doc: OpenApiDocument, path: string, method: string) =>
  doc.paths[`/api/v1${path}`]?.[method] as unknown as Op

describe('the OpenAPI traffic check (test/helpers/contract.ts)', () => {
  let t: TestApp | undefined
  afterEach(async () => {
    // The violations were provoked on purpose: they must not fail close().
    t?.contract.violations.splice(0)
    await t?.close()
  })

  const appWith = async (change: (doc: Doc) => void) => {
    t = await startTestApp({
      contractDocument: (doc) => {
        change(doc as Doc)
        return doc
      },
    })
    return t
  }

  it('reports a request the server accepts but the document refuses (a defaulted param marked required)', async () => {
    const { app, contract } = await appWith((doc) => {
      const limit = op(doc, '/users', 'get').parameters.find((p) => p.name === 'limit')
      if (limit) limit.required = true
    })
    const u = await registerUser(app)
    expect((await app.inject({ url: '/api/v1/users', headers: u.auth })).statusCode).toBe(200)
    expect(contract.violations).toEqual([
      expect.stringContaining(
        'searchUsers → 200: the server accepted a request the document refuses: query parameter limit is required',
      ),
    ])
  })

  it("reports a request the document allows but the server's schema refuses", async () => {
    const { app, contract } = await appWith((doc) => {
      const schema = op(doc, '/auth/register', 'post').requestBody.content['application/json']?.schema
      delete schema?.properties.full_name?.minLength
    })
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/auth/register',
      payload: { email: 'nobody@example.com', password: 'Sup3r-secret!', full_name: '' },
    })
    expect(res.statusCode).toBe(422)
    expect(contract.violations).toEqual([
      expect.stringContaining("register → 422: the server's schema refused"),
    ])
  })

  it('reports a response body that breaks its schema', async () => {
    const { app, contract } = await appWith((doc) => {
      doc.components.schemas.PrivateUser?.required?.push('nickname')
    })
    const u = await registerUser(app)
    await app.inject({ url: '/api/v1/auth/me', headers: u.auth })
    expect(contract.violations).toEqual(
      expect.arrayContaining([expect.stringMatching(/getMe → 200: body: .*nickname/)]),
    )
  })

  it('reports an undocumented status, media type and header', async () => {
    const { app, contract } = await appWith((doc) => {
      delete op(doc, '/users/{id}', 'get').responses['404']
      const me = op(doc, '/auth/me', 'get').responses['401']
      if (!me) throw new Error('getMe documents no 401')
      delete me.headers
      me.content = { 'application/json': me.content['application/problem+json'] }
    })
    const u = await registerUser(app)
    await app.inject({ url: `/api/v1/users/${crypto.randomUUID()}`, headers: u.auth })
    await app.inject({ url: '/api/v1/auth/me' })
    expect(contract.violations).toEqual(
      expect.arrayContaining([
        expect.stringContaining('getUser → 404: status 404 is not documented'),
        expect.stringContaining('getMe → 401: header www-authenticate is sent but not documented'),
        expect.stringContaining('getMe → 401: media type application/problem+json is not documented'),
      ]),
    )
  })

  it('finds nothing to report in traffic the document describes', async () => {
    const { app, contract } = await appWith(() => {})
    const u = await registerUser(app)
    await app.inject({ url: '/api/v1/users?limit=5', headers: u.auth })
    await app.inject({ url: '/api/v1/auth/me' })
    await app.inject({
      method: 'POST',
      url: '/api/v1/chat/groups',
      headers: u.auth,
      payload: { title: 'solo' },
    })
    expect(contract.violations).toEqual([])
    expect(contract.counts.responses).toBeGreaterThanOrEqual(4)
  })
})

describe('the AsyncAPI frame check (test/helpers/frame-contract.ts)', () => {
  // A private instance: the file's own `frameContract` must see real sockets only.
  const check = () => new AsyncApiContract(loadAsyncApi())

  it('reports a server frame that breaks its schema or is not declared', () => {
    const c = check()
    c.checkServerFrame({ type: 'pong' })
    c.checkServerFrame({ type: 'message.ack', client_msg_id: 'm1' })
    c.checkServerFrame({ type: 'surprise' })
    expect(c.violations).toEqual([
      expect.stringContaining('server frame message.ack does not match its schema'),
      expect.stringContaining('server frame of undeclared type surprise'),
    ])
  })

  it('tells client frames the document allows from those it refuses', () => {
    const c = check()
    expect(c.allowsClientFrame(JSON.stringify({ type: 'ping' }))).toBe(true)
    expect(c.allowsClientFrame(JSON.stringify({ type: 'message.send' }))).toBe(false)
    expect(c.allowsClientFrame(JSON.stringify({ type: 'ping', extra: 1 }))).toBe(false)
    expect(c.allowsClientFrame('not json')).toBe(false)
  })

  it('reports a server that refuses more, or fewer, frames than the document', () => {
    const c = check()
    c.settle({ docRefused: 0, serverRefused: 1, closeCode: 1000 })
    c.settle({ docRefused: 2, serverRefused: 1, closeCode: 1000 })
    c.settle({ docRefused: 2, serverRefused: 1, closeCode: 1009 })
    c.settle({ docRefused: 1, serverRefused: 1, closeCode: 1000 })
    expect(c.violations).toEqual([
      'the server refused 1 frame(s) the document allows',
      'the server accepted 1 frame(s) the document refuses',
    ])
  })
})
