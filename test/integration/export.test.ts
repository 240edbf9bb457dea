import { once } from 'node:events'
import { request } from 'node:http'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/lib/ids.js'
import { EXPORT_MAX_PER_WINDOW, EXPORT_PAGE } from '../../src/services/export.js'
import { messages } from '../../src/store/schema.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { sendFile } from '../helpers/attachments.js'
import { directChat, groupChat, removeMember, restDelete, restSend } from '../helpers/ws-client.js'

const EXPORT = '/api/v1/users/me/export'

interface Exported {
  format: string
  account: { id: string; email: string }
  memberships: { conversation_id: string; kind: string; role: string }[]
  blocks: { user_id: string }[]
  messages: {
    id: string
    conversation_id: string
    content: string
    deleted_at: string | null
    attachments: { id: string; url: string; filename: string }[]
  }[]
}

/** Issue 15, "Export": the user's own data, streamed. */
describe.each(DRIVERS)('data export on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
  })
  afterAll(async () => t?.close())

  const exportOf = async (u: TestUser): Promise<Exported> => {
    const res = await t.app.inject({ url: EXPORT, headers: u.auth })
    expect(res.statusCode).toBe(200)
    expect(res.headers['content-type']).toMatch(/^application\/json/)
    return res.json()
  }

  it("holds the account, memberships, blocks and every message the user sent, and nobody else's", async () => {
    const [a, b, c] = [
      await registerUser(t.app, 'Ann'),
      await registerUser(t.app, 'Bob'),
      await registerUser(t.app, 'Cid'),
    ]
    const dm = await directChat(t.app, a, b)
    const group = await groupChat(t.app, b, [a, c])
    const left = await groupChat(t.app, c, [a])
    await restSend(t.app, a, dm, 'hello bob')
    await restSend(t.app, b, dm, 'not mine')
    const gone = await restSend(t.app, a, group, 'to be deleted')
    await restDelete(t.app, a, gone.id)
    const fileId = await sendFile(t, a, group)
    await restSend(t.app, a, left, 'before leaving')
    await removeMember(t.app, c, left, a)
    await t.app.inject({ method: 'PUT', url: `/api/v1/users/me/blocks/${c.id}`, headers: a.auth })

    const doc = await exportOf(a)
    expect(doc.format).toBe('chat-api.export.v1')
    expect(doc.account).toMatchObject({ id: a.id, email: a.email })
    expect(doc.memberships.map((m) => m.conversation_id).sort()).toEqual([dm, group].sort())
    expect(doc.blocks.map((x) => x.user_id)).toEqual([c.id])
    // Oldest first; the deleted one as its tombstone; the one in a conversation A left is still A's.
    expect(doc.messages.map((m) => [m.conversation_id, m.content, m.deleted_at !== null])).toEqual([
      [dm, 'hello bob', false],
      [group, '', true],
      [group, '', false],
      [left, 'before leaving', false],
    ])
    expect(doc.messages[2]?.attachments).toEqual([
      expect.objectContaining({
        id: fileId,
        filename: 'world.txt',
        url: `/api/v1/chat/attachments/${fileId}`,
      }),
    ])
    // B's export has B's message only.
    expect((await exportOf(b)).messages.map((m) => m.content)).toEqual(['not mine'])
  })

  it('needs a token', async () => {
    expect((await t.app.inject({ url: EXPORT })).statusCode).toBe(401)
  })
})

describe('data export streaming (PostgreSQL)', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver: 'postgres' })
    await t.listen()
  })
  afterAll(async () => t?.close())

  /**
   * A document far larger than the socket buffers: the server can write only the first part
   * before the paused reader stops it. A message stored while the reader is paused must be in
   * the document, which holds only if the server reads the later pages after that point: a
   * document built whole before it is written would not have it.
   */
  it('writes the document while it reads it, a page at a time', async () => {
    const a = await registerUser(t.app, 'Ann')
    const b = await registerUser(t.app, 'Bob')
    const dm = await directChat(t.app, a, b)
    const total = 6 * EXPORT_PAGE
    const text = 'x'.repeat(8000)
    for (let from = 1; from <= total; from += 1000) {
      const rows = Array.from({ length: 1000 }, (_, i) => ({
        id: newId(),
        conversationId: dm,
        seq: from + i,
        senderId: a.id,
        content: text,
      }))
      await t.database.db.insert(messages).values(rows)
    }

    const res = await new Promise<import('node:http').IncomingMessage>((resolve, reject) => {
      const req = request(`${t.url}${EXPORT}`, { headers: a.auth }, resolve)
      req.on('error', reject)
      req.end()
    })
    expect(res.statusCode).toBe(200)
    const chunks: Buffer[] = [(await once(res, 'data'))[0] as Buffer]
    res.pause()
    // Stored while the reader has taken only the start of a ~24 MB document.
    const late = newId()
    await t.database.db
      .insert(messages)
      .values({ id: late, conversationId: dm, seq: total + 1, senderId: a.id, content: 'late' })
    res.on('data', (c: Buffer) => chunks.push(c))
    res.resume()
    await once(res, 'end')
    const doc = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Exported
    expect(doc.messages).toHaveLength(total + 1)
    expect(doc.messages.at(-1)).toMatchObject({ id: late, content: 'late' })
    // Storing ~24 MB takes a while on a loaded machine.
  }, 120_000)
})

describe('data export rate limit', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMITS: 'on' } })
  })
  afterAll(async () => t?.close())

  it(`allows ${EXPORT_MAX_PER_WINDOW} exports per user per hour, then 429 with Retry-After`, async () => {
    const a = await registerUser(t.app, 'Ann')
    const b = await registerUser(t.app, 'Bob')
    for (let i = 0; i < EXPORT_MAX_PER_WINDOW; i++) {
      const ok = await t.app.inject({ url: EXPORT, headers: a.auth })
      expect(ok.statusCode).toBe(200)
      expect(ok.headers['ratelimit-remaining']).toBe(String(EXPORT_MAX_PER_WINDOW - i - 1))
    }
    const refused = await t.app.inject({ url: EXPORT, headers: a.auth })
    expect(refused.statusCode).toBe(429)
    expect(refused.json().type).toBe('/problems/rate_limited')
    expect(Number(refused.headers['retry-after'])).toBeGreaterThan(0)
    // Per user: B is not limited by A's exports.
    expect((await t.app.inject({ url: EXPORT, headers: b.auth })).statusCode).toBe(200)
  })
})
