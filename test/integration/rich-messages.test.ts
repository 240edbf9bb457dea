import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { type ChatEvent, conversationChannel } from '../../src/protocol/events.js'
import type { MessageView } from '../../src/protocol/message.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'

/**
 * Issue 14 over HTTP on PostgreSQL and PGlite: replies and thread summaries, reactions, mentions
 * and pins, with their events and the visibility rules (a stranger or a removed member gets 404).
 */
const API = '/api/v1/chat'
type Method = 'GET' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

describe.each(DRIVERS)('rich messages on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
  })
  afterAll(async () => t?.close())

  const call = (user: TestUser, method: Method, url: string, payload?: object) =>
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
  async function group(owner: TestUser, members: TestUser[]): Promise<string> {
    const res = await call(owner, 'POST', '/groups', { title: 'G', member_ids: members.map((m) => m.id) })
    expect(res.statusCode).toBe(201)
    return res.json().id
  }
  async function send(u: TestUser, id: string, content: string, extra: object = {}): Promise<MessageView> {
    const res = await call(u, 'POST', `/conversations/${id}/messages`, { content, ...extra })
    expect(res.statusCode, res.body).toBe(201)
    return res.json()
  }
  const history = async (u: TestUser, id: string): Promise<MessageView[]> =>
    (await call(u, 'GET', `/conversations/${id}/messages`)).json().items
  const remove = async (owner: TestUser, id: string, u: TestUser) =>
    expect((await call(owner, 'DELETE', `/conversations/${id}/members/${u.id}`)).statusCode).toBe(204)

  describe('replies and threads', () => {
    it('a reply carries reply_to; the root its thread summary, in history and as an event', async () => {
      const [a, b, c] = await users('A', 'B', 'C')
      const id = await group(a, [b, c])
      const events = await record(id)
      const root = await send(a, id, 'x'.repeat(150))
      expect(root).toMatchObject({ reply_to: null, thread: null, reactions: [], mentions: [] })
      const r1 = await send(b, id, 'first', { reply_to: root.id })
      expect(r1.reply_to).toEqual({ id: root.id, seq: root.seq, sender_id: a.id, excerpt: 'x'.repeat(100) })
      await send(c, id, 'second', { reply_to: root.id })
      await send(b, id, 'third', { reply_to: root.id })
      const [h] = await history(a, id)
      expect(h?.thread).toMatchObject({ reply_count: 3, participants: [b.id, c.id] })
      const threads = events.filter((e) => e.type === 'message.thread')
      expect(threads.map((e) => e.type === 'message.thread' && e.thread.reply_count)).toEqual([1, 2, 3])
      const replies = (await call(c, 'GET', `/messages/${root.id}/replies?limit=2`)).json()
      expect(replies.items.map((m: MessageView) => m.content)).toEqual(['first', 'second'])
      const more = (await call(c, 'GET', `/messages/${root.id}/replies?cursor=${replies.next_cursor}`)).json()
      expect(more.items.map((m: MessageView) => m.content)).toEqual(['third'])
      expect(more.next_cursor).toBeNull()
    })

    it('refuses a reply to a message of another conversation (422); a deleted parent shows excerpt null', async () => {
      const [a, b] = await users('A', 'B')
      const one = await group(a, [b])
      const two = await group(a, [b])
      const elsewhere = await send(a, two, 'other')
      const res = await call(a, 'POST', `/conversations/${one}/messages`, {
        content: 'r',
        reply_to: elsewhere.id,
      })
      expect(res.statusCode).toBe(422)
      const root = await send(a, one, 'root')
      await send(b, one, 'reply', { reply_to: root.id })
      await call(a, 'DELETE', `/messages/${root.id}`)
      const items = await history(b, one)
      expect(items[1]?.reply_to).toMatchObject({ id: root.id, excerpt: null })
    })

    it('counts exactly with many members replying at once', async () => {
      const people = await users(...Array.from({ length: 12 }, (_, i) => `P${i}`))
      const [owner, ...rest] = people
      if (!owner) throw new Error('no owner')
      const id = await group(owner, rest)
      const root = await send(owner, id, 'root')
      await Promise.all(people.flatMap((p) => [1, 2].map(() => send(p, id, 'r', { reply_to: root.id }))))
      const [h] = await history(owner, id)
      expect(h?.thread?.reply_count).toBe(24)
      expect(h?.thread?.participants).toHaveLength(5)
    })

    it('hides a thread from strangers and removed members (404)', async () => {
      const [a, b, stranger] = await users('A', 'B', 'S')
      const id = await group(a, [b])
      const root = await send(a, id, 'root')
      expect((await call(stranger, 'GET', `/messages/${root.id}/replies`)).statusCode).toBe(404)
      await remove(a, id, b)
      expect((await call(b, 'GET', `/messages/${root.id}/replies`)).statusCode).toBe(404)
    })
  })

  describe('reactions', () => {
    it('adds idempotently, shows counts with me, publishes the whole summary with a growing rev', async () => {
      const [a, b] = await users('A', 'B')
      const id = await group(a, [b])
      const m = await send(a, id, 'hi')
      const events = await record(id)
      const thumbs = encodeURIComponent('👍')
      const first = await call(a, 'PUT', `/messages/${m.id}/reactions/${thumbs}`)
      expect(first.statusCode, first.body).toBe(200)
      expect((await call(a, 'PUT', `/messages/${m.id}/reactions/${thumbs}`)).statusCode).toBe(200)
      const second = (await call(b, 'PUT', `/messages/${m.id}/reactions/${thumbs}`)).json()
      expect(second.reactions).toEqual([{ emoji: '👍', count: 2, user_ids: [a.id, b.id], me: true }])
      await call(b, 'PUT', `/messages/${m.id}/reactions/:party_parrot:`)
      const [seen] = await history(a, id)
      expect(seen?.reactions).toEqual([
        { emoji: '👍', count: 2, user_ids: [a.id, b.id], me: true },
        { emoji: ':party_parrot:', count: 1, user_ids: [b.id], me: false },
      ])
      const revs = events.flatMap((e) => (e.type === 'message.reactions' ? [e.rev] : []))
      expect(revs).toEqual([1, 2, 3])
      const removed = (await call(b, 'DELETE', `/messages/${m.id}/reactions/${thumbs}`)).json()
      expect(removed.reactions[0]).toEqual({ emoji: '👍', count: 1, user_ids: [a.id], me: false })
      expect((await call(b, 'DELETE', `/messages/${m.id}/reactions/${thumbs}`)).statusCode).toBe(200)
      expect(events.filter((e) => e.type === 'message.reactions')).toHaveLength(4)
    })

    it('validates the emoji and the limits', async () => {
      const [a] = await users('A')
      const id = await group(a, [])
      const m = await send(a, id, 'hi')
      for (const bad of ['ab', '👍👍', ':Bad:', 'x👍', encodeURIComponent('\u200D')]) {
        const res = await call(a, 'PUT', `/messages/${m.id}/reactions/${encodeURIComponent(bad)}`)
        expect(res.statusCode, bad).toBe(422)
      }
      for (const ok of ['👩‍💻', '🇫🇷', '👍🏽', '1️⃣', ':+1:']) {
        const res = await call(a, 'PUT', `/messages/${m.id}/reactions/${encodeURIComponent(ok)}`)
        expect(res.statusCode, ok).toBe(200)
      }
      for (let i = 0; i < 5; i++) await call(a, 'PUT', `/messages/${m.id}/reactions/:e${i}:`)
      const over = await call(a, 'PUT', `/messages/${m.id}/reactions/:e9:`)
      expect(over.statusCode).toBe(422)
    })

    it('counts exactly with many members reacting at once', async () => {
      const people = await users(...Array.from({ length: 15 }, (_, i) => `R${i}`))
      const [owner, ...rest] = people
      if (!owner) throw new Error('no owner')
      const id = await group(owner, rest)
      const m = await send(owner, id, 'react to me')
      const emojis = ['👍', '🎉', ':ok:']
      const results = await Promise.all(
        people.flatMap((p) =>
          emojis.map((e) => call(p, 'PUT', `/messages/${m.id}/reactions/${encodeURIComponent(e)}`)),
        ),
      )
      expect(results.every((r) => r.statusCode === 200)).toBe(true)
      const [seen] = await history(owner, id)
      expect(seen?.reactions.map((r) => [r.emoji, r.count]).sort()).toEqual(emojis.map((e) => [e, 15]).sort())
    })

    it('reactions, replies and pins on one root at once: no deadlock, one change number each, gapless', async () => {
      const people = await users(...Array.from({ length: 8 }, (_, i) => `C${i}`))
      const [owner, ...rest] = people
      if (!owner) throw new Error('no owner')
      const id = await group(owner, rest)
      const root = await send(owner, id, 'root')
      const results = await Promise.all(
        people.flatMap((p) => [
          call(p, 'PUT', `/messages/${root.id}/reactions/${encodeURIComponent('👍')}`),
          call(p, 'POST', `/conversations/${id}/messages`, { content: 'r', reply_to: root.id }),
          call(p, 'PATCH', `/messages/${root.id}`, { content: 'root' }),
          call(owner, p === owner ? 'PUT' : 'DELETE', `/messages/${root.id}/pin`),
        ]),
      )
      // Edits by others are 403; everything else succeeds: none failed on a deadlock.
      expect(results.map((r) => r.statusCode).filter((c) => ![200, 201, 204, 403].includes(c))).toEqual([])
      const conv = (await call(owner, 'GET', `/conversations/${id}`)).json()
      const [seen] = await history(owner, id)
      // Every change here was to the root, so its latest change is the conversation's last.
      expect(seen?.change_seq).toBe(conv.change_seq)
      expect(seen?.thread?.reply_count).toBe(8)
      // 8 reactions and 1 edit, at least one thread change, at most one pin and one unpin per call.
      expect(conv.change_seq).toBeGreaterThanOrEqual(10)
      expect(conv.change_seq).toBeLessThanOrEqual(8 + 1 + 8 + 16)
    })

    it('is 404 for strangers and removed members, before any check of the emoji', async () => {
      const [a, b, stranger] = await users('A', 'B', 'S')
      const id = await group(a, [b])
      const m = await send(a, id, 'hi')
      expect((await call(stranger, 'PUT', `/messages/${m.id}/reactions/bad`)).statusCode).toBe(404)
      expect((await call(stranger, 'PUT', `/messages/${m.id}/reactions/:ok:`)).statusCode).toBe(404)
      await remove(a, id, b)
      expect((await call(b, 'DELETE', `/messages/${m.id}/reactions/:ok:`)).statusCode).toBe(404)
    })
  })

  describe('mentions', () => {
    it('stores mentions, lists them newest first, and counts unread ones per conversation', async () => {
      const [a, b, c] = await users('A', 'B', 'C')
      const id = await group(a, [b, c])
      const m1 = await send(a, id, 'hey @b', { mentions: [b.id] })
      expect(m1.mentions).toEqual([b.id])
      await send(c, id, 'plain')
      const m3 = await send(c, id, 'again', { mentions: [b.id, a.id] })
      const page = (await call(b, 'GET', '/mentions?limit=1')).json()
      expect(page.items.map((m: MessageView) => m.id)).toEqual([m3.id])
      const next = (await call(b, 'GET', `/mentions?cursor=${page.next_cursor}`)).json()
      expect(next.items.map((m: MessageView) => m.id)).toEqual([m1.id])
      const list = (await call(b, 'GET', '/conversations')).json()
      expect(list.items.find((x: { id: string }) => x.id === id).unread_mentions).toBe(2)
      await call(b, 'POST', `/conversations/${id}/read`, { seq: m1.seq })
      const after = (await call(b, 'GET', `/conversations/${id}`)).json()
      expect(after.unread_mentions).toBe(1)
    })

    it('refuses a mention of a non-member (422) and @all from a plain member (403)', async () => {
      const [a, b, outsider] = await users('A', 'B', 'O')
      const id = await group(a, [b])
      const bad = await call(a, 'POST', `/conversations/${id}/messages`, {
        content: 'x',
        mentions: [outsider.id],
      })
      expect(bad.statusCode).toBe(422)
      const all = await call(b, 'POST', `/conversations/${id}/messages`, { content: 'x', mentions: ['@all'] })
      expect(all.statusCode).toBe(403)
      const ok = await send(a, id, 'everyone', { mentions: ['@all'] })
      expect(ok.mentions_all).toBe(true)
      expect((await call(b, 'GET', '/mentions')).json().items.map((m: MessageView) => m.id)).toEqual([ok.id])
    })

    it('shows a removed member none of that conversation’s mentions', async () => {
      const [a, b] = await users('A', 'B')
      const id = await group(a, [b])
      await send(a, id, 'hi', { mentions: [b.id] })
      await remove(a, id, b)
      expect((await call(b, 'GET', '/mentions')).json().items).toEqual([])
    })
  })

  describe('pins', () => {
    it('pins (admins in groups), lists, publishes, and unpins a deleted message', async () => {
      const [a, b] = await users('A', 'B')
      const id = await group(a, [b])
      const m = await send(b, id, 'pin me')
      const events = await record(id)
      expect((await call(b, 'PUT', `/messages/${m.id}/pin`)).statusCode).toBe(403)
      expect((await call(a, 'PUT', `/messages/${m.id}/pin`)).statusCode).toBe(200)
      expect((await call(a, 'PUT', `/messages/${m.id}/pin`)).statusCode).toBe(200)
      const pins = (await call(b, 'GET', `/conversations/${id}/pins`)).json()
      expect(pins.items.map((x: MessageView) => x.id)).toEqual([m.id])
      expect(pins.items[0].pinned_at).not.toBeNull()
      await call(b, 'DELETE', `/messages/${m.id}`)
      expect((await call(b, 'GET', `/conversations/${id}/pins`)).json().items).toEqual([])
      expect(events.map((e) => e.type)).toEqual(['message.pinned', 'message.deleted', 'message.unpinned'])
    })

    it('lets either member of a direct conversation pin; strangers get 404', async () => {
      const [a, b, stranger] = await users('A', 'B', 'S')
      const id = (await call(a, 'POST', '/conversations', { recipient_id: b.id })).json().id
      const m = await send(a, id, 'x')
      expect((await call(b, 'PUT', `/messages/${m.id}/pin`)).statusCode).toBe(200)
      expect((await call(stranger, 'PUT', `/messages/${m.id}/pin`)).statusCode).toBe(404)
      expect((await call(stranger, 'GET', `/conversations/${id}/pins`)).statusCode).toBe(404)
      expect((await call(a, 'DELETE', `/messages/${m.id}/pin`)).statusCode).toBe(204)
    })
  })
})
