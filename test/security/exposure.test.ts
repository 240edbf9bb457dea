import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { addMember, directChat, restSend, TestSocket } from '../helpers/ws-client.js'
import { asyncApi, buildWorld, openApi, operations, resolve, type Schema, type World } from './fixtures.js'

/** Property names no response may have, at any depth. */
const SECRET_NAME = /password|hash|secret|salt/i

/** The only responses that may carry an email, each with the reason. Anything else exposing one fails. */
const EMAIL_ALLOWED: Record<string, string> = {
  'POST /api/v1/auth/register': 'the new account, to its owner',
  'GET /api/v1/auth/me': 'the caller',
  'PATCH /api/v1/users/me': 'the caller',
  'PATCH /api/v1/users/{id}': 'operators only (403 for everyone else)',
  'GET /api/v1/admin/users': 'operators only (403 for everyone else)',
  'PUT /api/v1/admin/users/{id}/suspension': 'operators only (403 for everyone else)',
  'DELETE /api/v1/admin/users/{id}/suspension': 'operators only (403 for everyone else)',
  'GET /api/v1/users/me/export': "the caller's own account, in their own data export",
}

/**
 * Secret fields some responses must carry, each with the reason. Anything else exposing one fails.
 * A webhook's signing secret is shown once, to the operator who registers it (docs/notifications.md).
 */
const SECRET_ALLOWED: Record<string, string> = {
  'POST /api/v1/admin/webhooks 201: /secret': 'operators only; the one time the signing secret is shown',
}

/** Every property of a schema, with its JSON path, following $refs, unions and array items. */
function properties(doc: Parameters<typeof resolve>[0], schema: Schema, path = '', seen = new Set<Schema>()) {
  const out: { name: string; path: string; parent: Schema }[] = []
  const s = resolve(doc, schema)
  if (seen.has(s)) return out
  seen.add(s)
  for (const [name, child] of Object.entries(s.properties ?? {})) {
    out.push({ name, path: `${path}/${name}`, parent: s })
    out.push(...properties(doc, child, `${path}/${name}`, seen))
  }
  for (const child of [...(s.anyOf ?? []), ...(s.oneOf ?? []), ...(s.allOf ?? [])]) {
    out.push(...properties(doc, child, path, seen))
  }
  if (s.items) out.push(...properties(doc, s.items, `${path}/*`, seen))
  if (typeof s.additionalProperties === 'object') {
    out.push(...properties(doc, s.additionalProperties, `${path}/*`, seen))
  }
  return out
}

describe('exposure: what responses may reveal', () => {
  let t: TestApp
  let w: World

  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
    w = await buildWorld(t)
  })
  afterAll(async () => t?.close())

  it('no response schema in the OpenAPI document has a password, hash or secret field', async () => {
    const doc = await openApi(t.app)
    const found: string[] = []
    let checked = 0
    for (const op of operations(doc)) {
      for (const [status, response] of Object.entries(op.responses)) {
        for (const media of Object.values(response.content ?? {})) {
          checked++
          for (const p of properties(doc, media.schema)) {
            const where = `${op.key} ${status}: ${p.path}`
            if (SECRET_NAME.test(p.name) && !SECRET_ALLOWED[where]) found.push(where)
          }
        }
      }
    }
    expect(checked).toBeGreaterThan(50)
    expect(found).toEqual([])
  })

  it('only the caller’s own account (and operator routes) expose an email, per the schemas', async () => {
    const doc = await openApi(t.app)
    const exposing = new Set<string>()
    for (const op of operations(doc)) {
      for (const response of Object.values(op.responses)) {
        for (const media of Object.values(response.content ?? {})) {
          if (properties(doc, media.schema).some((p) => p.name === 'email')) exposing.add(op.key)
        }
      }
    }
    expect([...exposing].sort()).toEqual(Object.keys(EMAIL_ALLOWED).sort())
  })

  it('no frame in the AsyncAPI document carries an email, password, hash or secret', () => {
    const found: string[] = []
    const { payloads } = asyncApi()
    for (const [name, payload] of payloads) {
      for (const p of properties({ paths: {} }, payload)) {
        if (p.name === 'email' || SECRET_NAME.test(p.name)) found.push(`${name}: ${p.path}`)
      }
    }
    expect(payloads.size).toBeGreaterThan(10)
    expect(found).toEqual([])
  })

  it('list, search and conversation responses contain no other user’s email, hash or token', async () => {
    const everyone: TestUser[] = [w.owner, w.member, w.other, w.removed, w.stranger]
    // The stranger shares a direct chat and a group with the owner, so both see each other's member rows.
    await directChat(t.app, w.stranger, w.owner)
    await addMember(t.app, w.owner, w.group, w.stranger)
    await restSend(t.app, w.stranger, w.group, 'hello from the newcomer')
    const socket = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: w.stranger.token })
    const watcher = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: w.owner.token })
    try {
      await socket.waitFor((f) => f.type === 'ready')
      await watcher.waitFor((f) => f.type === 'ready')
      await socket.waitFor((f) => f.type === 'presence' && f.user_id === w.owner.id)

      const prefix = (u: TestUser) => u.email.slice(0, u.email.indexOf('@') + 2)
      const urls = [
        '/api/v1/users',
        '/api/v1/users?limit=100',
        `/api/v1/users?query=${encodeURIComponent(prefix(w.owner))}`,
        `/api/v1/users?query=${encodeURIComponent('Owner')}`,
        `/api/v1/users/${w.owner.id}`,
        '/api/v1/chat/conversations',
        `/api/v1/chat/conversations/${w.group}`,
        `/api/v1/chat/conversations/${w.group}/messages`,
      ]
      const bodies: string[] = []
      for (const url of urls) {
        const res = await t.app.inject({ url, headers: w.stranger.auth })
        expect(res.statusCode, url).toBe(200)
        bodies.push(res.body)
      }
      // The email search finds the owner by their address, and still shows public fields only.
      expect(JSON.parse(bodies[2] as string).items.map((u: { id: string }) => u.id)).toContain(w.owner.id)
      const sent = await restSend(t.app, w.owner, w.group, 'ping')
      await socket.waitFor((f) => f.type === 'message.new' && (f.message as { id: string }).id === sent.id)
      bodies.push(JSON.stringify(socket.frames))

      const hashes = (await t.database.db.query.users.findMany()).map((u) => u.passwordHash)
      const forbidden = [
        ...everyone.filter((u) => u !== w.stranger).map((u) => u.email),
        ...everyone.map((u) => u.refresh),
        ...hashes,
        '$argon2',
      ]
      for (const [i, body] of bodies.entries()) {
        const where = urls[i] ?? 'socket frames'
        for (const s of forbidden) expect(body.includes(s), `${where} contains ${s}`).toBe(false)
        expect(body, where).not.toMatch(/"[^"]*(password|hash|secret)[^"]*":/i)
      }
      // The caller's own email appears where it should.
      const me = await t.app.inject({ url: '/api/v1/auth/me', headers: w.stranger.auth })
      expect(me.json().email).toBe(w.stranger.email)
      expect(me.body).not.toMatch(/password|hash/i)
    } finally {
      socket.close()
      watcher.close()
    }
  })
})
