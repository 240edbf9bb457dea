import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { openDatabase } from '../../src/store/db.js'
import { registerUser, startTestApp, type TestApp } from '../helpers/app.js'
import { PrivatePostgres } from '../helpers/private-postgres.js'
import { eventually, freePort, TestSocket } from '../helpers/ws-client.js'

describe('PostgreSQL stopped and restarted', () => {
  let pg: PrivatePostgres
  let t: TestApp

  beforeAll(async () => {
    pg = new PrivatePostgres(await freePort())
    pg.start()
    const database = await openDatabase({ databaseUrl: pg.url, poolSize: 4 })
    await database.migrate()
    t = await startTestApp({ database })
    await t.listen()
  }, 60_000)
  afterAll(async () => {
    await t?.close()
    await t?.database.close()
    try {
      pg?.stop()
    } catch {
      // already stopped
    }
  })

  it('refuses sends with a clear error, acks nothing uncommitted, and recovers by itself', async () => {
    const a = await registerUser(t.app, 'PgA')
    const b = await registerUser(t.app, 'PgB')
    const conv = await t.app.inject({
      method: 'POST',
      url: '/api/v1/chat/conversations',
      headers: a.auth,
      payload: { recipient_id: b.id },
    })
    const id = conv.json().id as string
    const sock = await TestSocket.open(`${t.url}/api/v1/chat/ws/conversations/${id}`, { token: a.token })
    sock.send({ type: 'message.send', content: 'before', client_msg_id: 'before' })
    await sock.waitFor((f) => f.type === 'message.ack' && f.client_msg_id === 'before')

    pg.stop()
    sock.send({ type: 'message.send', content: 'during', client_msg_id: 'during' })
    const err = await sock.waitFor((f) => f.type === 'error' && f.client_msg_id === 'during', {
      timeoutMs: 15_000,
    })
    expect(err.code).toBe('unavailable')
    // The token check needs the database too, so REST answers 503 either way.
    const rest = await t.app.inject({
      method: 'POST',
      url: `/api/v1/chat/conversations/${id}/messages`,
      headers: a.auth,
      payload: { content: 'rest during' },
    })
    expect(rest.statusCode).toBe(503)
    expect(rest.headers['content-type']).toContain('application/problem+json')
    expect((await t.app.inject({ method: 'GET', url: '/ready' })).statusCode).toBe(503)

    pg.start()
    await eventually(
      '/ready to answer 200 once PostgreSQL is back',
      async () => (await t.app.inject({ method: 'GET', url: '/ready' })).statusCode === 200,
      20_000,
    )
    sock.send({ type: 'message.send', content: 'after', client_msg_id: 'after' })
    const ack = await sock.waitFor((f) => f.type === 'message.ack' && f.client_msg_id === 'after', {
      timeoutMs: 15_000,
    })
    expect((ack.message as { seq: number }).seq).toBe(2)
    expect(sock.frames.some((f) => f.type === 'message.ack' && f.client_msg_id === 'during')).toBe(false)
    const history = await t.app.inject({
      method: 'GET',
      url: `/api/v1/chat/conversations/${id}/messages`,
      headers: a.auth,
    })
    expect(history.json().items.map((m: { content: string }) => m.content)).toEqual(['before', 'after'])
    sock.close()
  })
})
