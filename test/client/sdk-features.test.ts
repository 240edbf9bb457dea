import {
  ChatClient,
  LocalStorageCursorStore,
  LocalStorageOutboxStore,
  LocalStorageTokenStore,
  type StorageLike,
} from '@chat-api/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { nextEvent, signUp, until } from '../helpers/sdk.js'

/** A Storage with localStorage's semantics (strings in, strings out), for the browser adapters. */
class MapStorage implements StorageLike {
  private readonly items = new Map<string, string>()
  getItem(key: string): string | null {
    return this.items.get(key) ?? null
  }
  setItem(key: string, value: string): void {
    this.items.set(key, String(value))
  }
  removeItem(key: string): void {
    this.items.delete(key)
  }
}

describe('SDK features against the server (postgres)', () => {
  let t: TestApp
  const clients: ChatClient[] = []
  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await t.close()
  })
  const user = async (name: string, options: Parameters<typeof signUp>[2] = {}) => {
    const c = await signUp(t.url, name, options)
    clients.push(c)
    return c
  }
  const pair = async () => {
    const ann = await user('Ann')
    const bob = await user('Bob')
    const dm = await ann.conversations.openDirect(bob.user?.id ?? '')
    return { ann, bob, dm }
  }

  it('keeps pending sends across a reload (localStorage) and stores each once, even if the first attempt got through', async () => {
    const storage = new MapStorage()
    const stores = () => ({
      tokenStore: new LocalStorageTokenStore('tokens', storage),
      cursorStore: new LocalStorageCursorStore('cursors', storage),
      outboxStore: new LocalStorageOutboxStore('outbox', storage),
    })
    const ann = await user('Ann', stores())
    const bob = await user('Bob')
    const dm = await ann.conversations.openDirect(bob.user?.id ?? '')
    // Offline: composed, shown as pending, kept in storage.
    const first = ann.send(dm.id, 'one')
    const second = ann.send(dm.id, 'two')
    await ann.flushed()
    expect(ann.pending(dm.id).map((e) => [e.content, e.status])).toEqual([
      ['one', 'pending'],
      ['two', 'pending'],
    ])
    // The first attempt of 'one' reached the server before the page died (its ack was lost).
    await ann.rest.post('/api/v1/chat/conversations/{id}/messages', {
      params: { id: dm.id },
      body: { content: 'one', client_msg_id: first.id },
    })
    ann.disconnect()

    // The page reloads: a new client on the same storage resumes the session and the outbox.
    const reloaded = new ChatClient({ baseUrl: t.url, ...stores() })
    clients.push(reloaded)
    expect(await reloaded.auth.restore()).toMatchObject({ id: ann.user?.id })
    expect(reloaded.pending(dm.id).map((e) => e.id)).toEqual([first.id, second.id])
    await reloaded.connect()
    const settled = await Promise.all([reloaded.settled(first.id), reloaded.settled(second.id)])
    expect(settled.map((e) => [e.status, e.message?.seq, e.message?.client_msg_id])).toEqual([
      ['sent', 1, first.id],
      ['sent', 2, second.id],
    ])
    const history = await reloaded.history(dm.id, { afterSeq: 0 })
    expect(history.items.map((m) => m.content)).toEqual(['one', 'two'])
    await reloaded.flushed()
    expect(storage.getItem(`outbox:${ann.user?.id}`)).toBeNull()
  })

  it('edits and deletes through the outbox, also a message that is still pending', async () => {
    const { ann, bob, dm } = await pair()
    const draft = ann.send(dm.id, 'draft')
    const edit = ann.edit(draft, 'final')
    const doomed = ann.send(dm.id, 'oops')
    const remove = ann.delete(doomed)
    await Promise.all([ann.connect(), bob.connect()])
    const [edited, deleted] = await Promise.all([ann.settled(edit.id), ann.settled(remove.id)])
    expect(edited).toMatchObject({ status: 'sent', message: { content: 'final', seq: 1 } })
    expect(deleted.status).toBe('sent')
    expect(deleted.message?.deleted_at).not.toBeNull()
    const history = await bob.history(dm.id, { afterSeq: 0 })
    expect(history.items.map((m) => [m.seq, m.content, m.deleted_at !== null])).toEqual([
      [1, 'final', false],
      [2, '', true],
    ])
    // A stored message is edited by its Message too; the peer hears of it.
    const updated = nextEvent(bob, 'message.updated', (e) => e.message.content === 'final!')
    const message = history.items[0]
    if (!message) throw new Error('no message')
    await ann.settled(ann.edit(message, 'final!').id)
    expect((await updated).conversationId).toBe(dm.id)
  })

  it('a refused send settles failed with the server error, and the next one still goes', async () => {
    const { ann, dm } = await pair()
    await ann.connect()
    // Over MESSAGE_MAX_CHARS (refused in an error frame), and over the socket's frame limit (REST: 413).
    const tooLong = ann.send(dm.id, 'x'.repeat(5_000))
    const huge = ann.send(dm.id, 'y'.repeat(70_000))
    const fine = ann.send(dm.id, 'fine')
    const [refused, rejected, sent] = await Promise.all([tooLong, huge, fine].map((e) => ann.settled(e.id)))
    expect(refused).toMatchObject({ status: 'failed', error: { code: 'validation_failed' } })
    expect(rejected).toMatchObject({ status: 'failed', error: { code: 'body_too_large', status: 413 } })
    expect(sent).toMatchObject({ status: 'sent', message: { seq: 1 } })
    expect(ann.state).toBe('open')
    expect(ann.pending(dm.id).map((e) => e.id)).toEqual([tooLong.id, huge.id])
    ann.discard(tooLong.id)
    ann.discard(huge.id)
    expect(ann.pending()).toEqual([])
  })

  it('timeline: pages back by keyset, merges live messages once, shows unsent ones', async () => {
    const { ann, bob, dm } = await pair()
    await Promise.all([ann.connect(), bob.connect()])
    for (let i = 1; i <= 7; i++) await ann.settled(ann.send(dm.id, `m${i}`).id)
    await until(bob, () => bob.lastDelivered(dm.id) === 7, 'bob has 7')
    const timeline = bob.timeline(dm.id)
    expect(await timeline.loadOlder(3)).toBe(3)
    expect(timeline.messages.map((m) => m.seq)).toEqual([5, 6, 7])
    await timeline.loadOlder(3)
    await timeline.loadOlder(3)
    expect(timeline.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7])
    expect(timeline.hasOlder).toBe(false)
    const live = new Promise<void>((resolve) =>
      timeline.on('change', (tl) => tl.messages.length === 8 && resolve()),
    )
    await ann.settled(ann.send(dm.id, 'm8').id)
    await live
    expect(timeline.messages.map((m) => m.content)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8'])
    timeline.dispose()

    const mine = ann.timeline(dm.id)
    ann.disconnect()
    const entry = ann.send(dm.id, 'while offline')
    expect(mine.unsent.map((e) => [e.id, e.status])).toEqual([[entry.id, 'pending']])
  })

  it('typing is throttled and stops; presence follows the peer; read markers clear unread counts', async () => {
    const { ann, bob, dm } = await pair()
    await bob.connect()
    const online = nextEvent(bob, 'presence', (p) => p.userId === ann.user?.id && p.status === 'online')
    await ann.connect()
    await online
    expect(bob.presence(ann.user?.id ?? '')).toBe('online')

    const typing: boolean[] = []
    bob.on('typing', (e) => e.userId === ann.user?.id && typing.push(e.typing))
    const started = nextEvent(bob, 'typing', (e) => e.typing)
    ann.typing(dm.id)
    ann.typing(dm.id)
    ann.typing(dm.id)
    await started
    expect(bob.typingIn(dm.id)).toEqual([ann.user?.id])
    const stopped = nextEvent(bob, 'typing', (e) => !e.typing)
    ann.typing(dm.id, false)
    await stopped
    expect(typing).toEqual([true, false])

    for (const text of ['a', 'b', 'c']) await ann.settled(ann.send(dm.id, text).id)
    await until(bob, () => bob.unreadCount(dm.id) === 3, 'three unread')
    const unread = nextEvent(bob, 'unread', (u) => u.conversationId === dm.id && u.count === 1)
    const read = bob.markRead(dm.id, 2)
    if (!read) throw new Error('no read entry')
    await bob.settled(read.id)
    await unread
    const seen = nextEvent(ann, 'read', (r) => r.userId === bob.user?.id && r.seq === 3)
    bob.markRead(dm.id)
    await seen
    expect(bob.unreadCount(dm.id)).toBe(0)

    const offline = nextEvent(bob, 'presence', (p) => p.userId === ann.user?.id && p.status === 'offline')
    ann.disconnect()
    await offline
  })

  it('a conversation created while connected is followed from its first message', async () => {
    const ann = await user('Ann')
    const bob = await user('Bob')
    await Promise.all([ann.connect(), bob.connect()])
    const created = nextEvent(bob, 'conversation', (c) => c.type === 'created')
    const group = await ann.conversations.createGroup({ title: 'new', member_ids: [bob.user?.id ?? ''] })
    expect((await created).conversationId).toBe(group.id)
    const got = nextEvent(bob, 'message', (m) => m.conversationId === group.id)
    await ann.settled(ann.send(group.id, 'hi').id)
    expect((await got).message.seq).toBe(1)
    await until(bob, () => bob.conversations.get(group.id) !== undefined, 'group listed')
    expect(bob.conversations.items[0]?.id).toBe(group.id)
  })
})
