import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { type ChatEvent, conversationChannel } from '../../src/protocol/events.js'
import { conversationMembers, conversations, messages } from '../../src/store/schema.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'

const API = '/api/v1/chat'
const MAX_CHARS = 200

interface Msg {
  id: string
  seq: number
  content: string
  sender_id: string
  edited_at: string | null
  created_at: string
  deleted_at: string | null
}

describe.each(DRIVERS)('messages on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver, env: { MESSAGE_MAX_CHARS: String(MAX_CHARS) } })
  })
  afterAll(async () => t?.close())

  const call = (user: TestUser, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url: `${API}${url}`, headers: user.auth, ...(payload ? { payload } : {}) })
  const users = <N extends string[]>(...names: N) =>
    Promise.all(names.map((n) => registerUser(t.app, n))) as Promise<{ [K in keyof N]: TestUser }>

  async function record(conversationId: string): Promise<ChatEvent[]> {
    const events: ChatEvent[] = []
    onTestFinished(
      await t.services.broker.subscribe(conversationChannel(conversationId), (e) => events.push(e)),
    )
    return events
  }

  async function direct(a: TestUser, b: TestUser): Promise<string> {
    return (await call(a, 'POST', '/conversations', { recipient_id: b.id })).json().id
  }

  async function group(owner: TestUser, members: TestUser[]): Promise<string> {
    const res = await call(owner, 'POST', '/groups', { title: 'G', member_ids: members.map((m) => m.id) })
    expect(res.statusCode).toBe(201)
    return res.json().id
  }

  async function send(u: TestUser, id: string, content: string, client_msg_id?: string): Promise<Msg> {
    const res = await call(u, 'POST', `/conversations/${id}/messages`, { content, client_msg_id })
    expect(res.statusCode, res.body).toBe(201)
    return res.json()
  }

  /** Sends `n` messages one after another. */
  async function sendMany(u: TestUser, id: string, n: number): Promise<void> {
    for (let i = 0; i < n; i++) await send(u, id, 'm')
  }

  const stored = (conversationId: string) =>
    t.database.db
      .select()
      .from(messages)
      .where(eq(messages.conversationId, conversationId))
      .orderBy(asc(messages.seq))

  const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
  const seqs = (items: Msg[]) => items.map((m) => m.seq)

  describe('sending', () => {
    it('stores a message (201) with the next seq and trimmed content, and publishes it', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      const events = await record(id)
      const res = await call(a, 'POST', `/conversations/${id}/messages`, { content: '  hello  ' })
      expect(res.statusCode).toBe(201)
      const msg = res.json()
      expect(msg).toMatchObject({
        seq: 1,
        content: 'hello',
        sender_id: a.id,
        conversation_id: id,
        edited_at: null,
      })
      expect((await send(b, id, 'hi')).seq).toBe(2)
      expect(events.map((e) => e.type === 'message.created' && e.message)).toEqual([
        msg,
        expect.objectContaining({ seq: 2 }),
      ])
    })

    it('returns the first message (200) for a repeated client_msg_id, storing and publishing nothing new', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      const events = await record(id)
      const first = await send(a, id, 'once', 'c-1')
      const again = await call(a, 'POST', `/conversations/${id}/messages`, {
        content: 'once, again',
        client_msg_id: 'c-1',
      })
      expect(again.statusCode).toBe(200)
      expect(again.json()).toEqual(first)
      // The key is per sender: the other member's c-1 is a new message, and seq stays gapless.
      expect((await send(b, id, 'mine', 'c-1')).seq).toBe(2)
      expect((await send(a, id, 'next')).seq).toBe(3)
      expect((await stored(id)).map((m) => m.content)).toEqual(['once', 'mine', 'next'])
      expect(events.filter((e) => e.type === 'message.created')).toHaveLength(3)
    })

    it('deduplicates concurrent resends of one client_msg_id to one message', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      const results = await Promise.all(
        range(1, 10).map(() =>
          call(a, 'POST', `/conversations/${id}/messages`, { content: 'x', client_msg_id: 'dup' }),
        ),
      )
      expect(results.map((r) => r.statusCode).sort((x, y) => x - y)).toEqual([...Array(9).fill(200), 201])
      expect(new Set(results.map((r) => r.json().id)).size).toBe(1)
      expect(await stored(id)).toHaveLength(1)
    })

    it('rejects empty, blank, too long and NUL content with 422, storing nothing', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      for (const content of ['', ' \n\t ', 'x'.repeat(MAX_CHARS + 1), 'a\u0000b', 'ok\uD800']) {
        const res = await call(a, 'POST', `/conversations/${id}/messages`, { content })
        expect(res.statusCode, JSON.stringify(content)).toBe(422)
        expect(res.json().errors[0].path).toBe('/body/content')
      }
      expect((await call(a, 'POST', `/conversations/${id}/messages`, {})).statusCode).toBe(422)
      expect(await stored(id)).toEqual([])
      // The limit counts characters (code points), not UTF-16 units: 200 emoji fit.
      expect((await send(a, id, '😀'.repeat(MAX_CHARS))).content).toBe('😀'.repeat(MAX_CHARS))
    })

    it('round-trips emoji, RTL text and combining marks exactly', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      const content = '👩🏽‍💻 שלום, עולם \u200F مرحبا e\u0301 Å 🇺🇦 \u{1F600}\u200D'
      expect((await send(a, id, content)).content).toBe(content)
      const history = (await call(b, 'GET', `/conversations/${id}/messages`)).json()
      expect(history.items[0].content).toBe(content)
      expect((await stored(id))[0]?.content).toBe(content)
    })
  })

  describe('seq under concurrency', () => {
    // A generous timeout: 1,000 requests on PGlite take seconds when other suites share the 2 cores.
    it('is gapless and unique with 20 senders × 50 messages in one group', { timeout: 90_000 }, async () => {
      const senders = await users(...range(1, 20).map((i) => `S${i}`))
      const [owner, ...rest] = senders as [TestUser, ...TestUser[]]
      const id = await group(owner, rest)
      const events = await record(id)
      const results = await Promise.all(
        senders.flatMap((s, i) =>
          range(1, 50).map((n) => call(s, 'POST', `/conversations/${id}/messages`, { content: `${i}:${n}` })),
        ),
      )
      expect(results.every((r) => r.statusCode === 201)).toBe(true)
      expect(results.map((r) => r.json().seq).sort((x, y) => x - y)).toEqual(range(1, 1000))
      const rows = await stored(id)
      expect(rows.map((r) => r.seq)).toEqual(range(1, 1000))
      expect(new Set(rows.map((r) => r.content)).size).toBe(1000)
      // Published after commit, in seq order.
      expect(events.map((e) => (e.type === 'message.created' ? e.message.seq : -1))).toEqual(range(1, 1000))
      const [conv] = await t.database.db.select().from(conversations).where(eq(conversations.id, id))
      expect(conv?.lastSeq).toBe(1000)
    })

    it('is gapless in each of several conversations written at once', { timeout: 90_000 }, async () => {
      const people = await users('P1', 'P2', 'P3', 'P4', 'P5')
      const [p1, ...others] = people as [TestUser, ...TestUser[]]
      const ids = await Promise.all(range(1, 4).map(() => group(p1, others)))
      await Promise.all(ids.flatMap((id) => people.flatMap((p) => range(1, 30).map(() => send(p, id, 'x')))))
      for (const id of ids) expect((await stored(id)).map((r) => r.seq)).toEqual(range(1, 150))
    })
  })

  describe('history', () => {
    it('pages by keyset: newest page by default, before_seq backward, after_seq forward; items ascending', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      await sendMany(a, id, 12)
      const get = async (query: string) => {
        const res = await call(b, 'GET', `/conversations/${id}/messages?${query}`)
        expect(res.statusCode, `${query}: ${res.body}`).toBe(200)
        return res.json() as { items: Msg[]; next_cursor: string | null }
      }
      const walk = async (query: string) => {
        const pages: number[][] = []
        let page = await get(query)
        pages.push(seqs(page.items))
        while (page.next_cursor) {
          page = await get(`limit=5&cursor=${encodeURIComponent(page.next_cursor)}`)
          pages.push(seqs(page.items))
        }
        return pages
      }
      expect(await walk('limit=5')).toEqual([range(8, 12), range(3, 7), range(1, 2)])
      expect(await walk('limit=5&before_seq=9')).toEqual([range(4, 8), range(1, 3)])
      expect(await walk('limit=5&after_seq=3')).toEqual([range(4, 8), range(9, 12)])
      expect(await walk('limit=5&after_seq=12')).toEqual([[]])
      expect(await get('limit=5&after_seq=7')).toMatchObject({ next_after_seq: null, next_before_seq: null })
      expect(await get('limit=2&after_seq=7')).toMatchObject({ next_after_seq: 9, next_before_seq: null })
    })

    it("keeps the seed's skip/limit (counted from the oldest) and the default and maximum limits", async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      await sendMany(a, id, 105)
      const get = async (query: string) =>
        (await call(a, 'GET', `/conversations/${id}/messages${query}`)).json()
      expect(seqs((await get('?skip=0&limit=50')).items)).toEqual(range(1, 50))
      expect(seqs((await get('?skip=100&limit=50')).items)).toEqual(range(101, 105))
      expect(seqs((await get('')).items)).toEqual(range(56, 105))
      expect(seqs((await get('?limit=100')).items)).toEqual(range(6, 105))
    })

    it('returns every message exactly once, in order, while new ones keep arriving', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      await sendMany(a, id, 20)
      const forward: number[] = []
      let next: string | null = null
      let query = 'after_seq=0&limit=6'
      do {
        const page: { items: Msg[]; next_cursor: string | null } = (
          await call(b, 'GET', `/conversations/${id}/messages?${query}`)
        ).json()
        forward.push(...seqs(page.items))
        await sendMany(b, id, 3)
        next = page.next_cursor
        query = `limit=6&cursor=${encodeURIComponent(next ?? '')}`
      } while (next)
      // Each page sends 3 more, fewer than a page holds, so the walk catches up with the end.
      const lastSeen = forward.at(-1) ?? 0
      expect(forward).toEqual(range(1, lastSeen))
      expect(lastSeen).toBeGreaterThan(20)
      // Only the 3 sent after the final page are missing: the walk reached the end.
      expect(await stored(id)).toHaveLength(lastSeen + 3)

      // Backward from the newest page: messages sent meanwhile land above it, never inside the walk.
      const top = (await call(b, 'GET', `/conversations/${id}/messages?limit=7`)).json()
      const backward: number[] = [...seqs(top.items)]
      let cursor: string | null = top.next_cursor
      while (cursor) {
        await sendMany(a, id, 2)
        const page = (
          await call(b, 'GET', `/conversations/${id}/messages?limit=7&cursor=${encodeURIComponent(cursor)}`)
        ).json()
        backward.unshift(...seqs(page.items))
        cursor = page.next_cursor
      }
      expect(backward).toEqual(range(1, top.items.at(-1).seq))
    })

    it('answers 422 for bad cursors, limits and conflicting bounds', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      const junk = Buffer.from(JSON.stringify({ after: -1 })).toString('base64url')
      for (const query of [
        'cursor=%%%',
        'cursor=not-a-cursor',
        `cursor=${junk}`,
        'limit=101',
        'limit=0',
        'after_seq=-1',
        'before_seq=abc',
        'after_seq=1&before_seq=5',
        'skip=0&after_seq=1',
      ]) {
        const res = await call(a, 'GET', `/conversations/${id}/messages?${query}`)
        expect(res.statusCode, query).toBe(422)
        expect(res.json().errors[0].path, query).toMatch(/^\/querystring\//)
      }
    })
  })

  describe('edits and deletes', () => {
    it('lets only the sender edit, setting edited_at and publishing message.updated', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      const msg = await send(a, id, 'tpyo')
      const events = await record(id)
      expect((await call(b, 'PATCH', `/messages/${msg.id}`, { content: 'hijack' })).statusCode).toBe(403)
      expect((await call(a, 'PATCH', `/messages/${msg.id}`, { content: '   ' })).statusCode).toBe(422)
      const res = await call(a, 'PATCH', `/messages/${msg.id}`, { content: ' typo ' })
      expect(res.statusCode).toBe(200)
      const edited = res.json()
      expect(edited).toMatchObject({ id: msg.id, seq: msg.seq, content: 'typo', created_at: msg.created_at })
      expect(edited.edited_at).not.toBeNull()
      expect(events).toEqual([
        { type: 'message.updated', conversation_id: id, message: edited, reactors: {} },
      ])
      expect((await stored(id))[0]).toMatchObject({ content: 'typo', editedAt: new Date(edited.edited_at) })
    })

    it('deletes to a tombstone (content removed, seq kept) and publishes message.deleted once', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      const msg = await send(a, id, 'oops')
      await send(a, id, 'after')
      const events = await record(id)
      expect((await call(b, 'DELETE', `/messages/${msg.id}`)).statusCode).toBe(403)
      const res = await call(a, 'DELETE', `/messages/${msg.id}`)
      expect(res.statusCode).toBe(200)
      const tomb = res.json()
      expect(tomb).toMatchObject({ id: msg.id, seq: 1, content: '', sender_id: a.id })
      expect(tomb.deleted_at).not.toBeNull()
      expect((await call(a, 'DELETE', `/messages/${msg.id}`)).json()).toEqual(tomb)
      expect(events).toEqual([{ type: 'message.deleted', conversation_id: id, message: tomb, reactors: {} }])
      const history = (await call(b, 'GET', `/conversations/${id}/messages`)).json()
      expect(history.items.map((m: Msg) => [m.seq, m.content])).toEqual([
        [1, ''],
        [2, 'after'],
      ])
      expect((await call(a, 'PATCH', `/messages/${msg.id}`, { content: 'back' })).statusCode).toBe(409)
    })

    it("lets a group admin delete others' messages, but not a plain member", async () => {
      const [owner, m1, m2] = await users('Olga', 'Mia', 'Max')
      const id = await group(owner, [m1, m2])
      const msg = await send(m1, id, 'spam')
      expect((await call(m2, 'DELETE', `/messages/${msg.id}`)).statusCode).toBe(403)
      expect((await stored(id))[0]?.deletedAt).toBeNull()
      const res = await call(owner, 'DELETE', `/messages/${msg.id}`)
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({ content: '', seq: 1 })
      // Deleting again answers as the first time did: still 403 for a plain member.
      expect((await call(m2, 'DELETE', `/messages/${msg.id}`)).statusCode).toBe(403)
    })
  })

  describe('read state', () => {
    it('moves last_read_seq forward only, clamps it, and counts unread messages from others', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      for (const text of ['1', '2', '3']) await send(a, id, text)
      const events = await record(id)
      const unread = async (u: TestUser) => {
        const one = (await call(u, 'GET', `/conversations/${id}`)).json().unread_count
        const listed = (await call(u, 'GET', '/conversations')).json().items[0].unread_count
        expect(listed).toBe(one)
        return one
      }
      expect([await unread(a), await unread(b)]).toEqual([0, 3])
      const read = (u: TestUser, seq: number) => call(u, 'POST', `/conversations/${id}/read`, { seq })
      expect((await read(b, 2)).json()).toEqual({ last_read_seq: 2 })
      expect(await unread(b)).toBe(1)
      expect((await read(b, 1)).json()).toEqual({ last_read_seq: 2 })
      await send(b, id, 'my own')
      expect([await unread(a), await unread(b)]).toEqual([1, 1])
      expect((await read(b, 999)).json()).toEqual({ last_read_seq: 4 })
      expect(await unread(b)).toBe(0)
      const member = (await call(a, 'GET', `/conversations/${id}`))
        .json()
        .members.find((m: { user_id: string }) => m.user_id === b.id)
      expect(member.last_read_seq).toBe(4)
      const [row] = await t.database.db
        .select()
        .from(conversationMembers)
        .where(eq(conversationMembers.userId, b.id))
      expect(row?.lastReadSeq).toBe(4)
      expect(events.filter((e) => e.type === 'read')).toEqual([
        { type: 'read', conversation_id: id, user_id: b.id, seq: 2 },
        { type: 'read', conversation_id: id, user_id: b.id, seq: 4 },
      ])
      expect((await read(b, -1)).statusCode).toBe(422)
      // A deleted message no longer counts as unread (a tombstone has nothing to read).
      const gone = await send(a, id, 'never mind')
      expect(await unread(b)).toBe(1)
      await call(a, 'DELETE', `/messages/${gone.id}`)
      expect(await unread(b)).toBe(0)
    })

    it('publishes each forward move of concurrent reads once, ending at the highest', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await direct(a, b)
      await sendMany(a, id, 10)
      const events = await record(id)
      const seqsRead = [...range(1, 10), ...range(1, 10)]
      await Promise.all(seqsRead.map((seq) => call(b, 'POST', `/conversations/${id}/read`, { seq })))
      const moves = events.flatMap((e) => (e.type === 'read' ? [e.seq] : []))
      expect(new Set(moves).size).toBe(moves.length)
      expect(Math.max(...moves)).toBe(10)
      expect((await call(b, 'GET', `/conversations/${id}`)).json().unread_count).toBe(0)
    })
  })
})
