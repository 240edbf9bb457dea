import { isDeepStrictEqual } from 'node:util'
import type { ChatClient, Message, Timeline } from '@chat-api/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DRIVERS, startTestApp, type TestApp } from '../helpers/app.js'
import { DAY, retentionJob } from '../helpers/retention.js'
import { nextEvent, signUp, until } from '../helpers/sdk.js'

/**
 * Issue 14, "reactions survive resume", through the SDK on PostgreSQL and PGlite: a client that
 * was away while others edited, deleted, reacted, replied (thread) and pinned catches up with
 * `sync` and its change position, and its timeline ends up equal to what history says now; live
 * changes after that keep it equal.
 */
describe.each(DRIVERS)('SDK: changes to messages it holds converge after resume (%s)', (driver) => {
  let t: TestApp
  const clients: ChatClient[] = []
  beforeAll(async () => {
    t = await startTestApp({ driver })
    await t.listen()
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await t?.close()
  })
  const user = async (name: string) => {
    const c = await signUp(t.url, name)
    clients.push(c)
    return c
  }
  const react = (c: ChatClient, m: Message, emoji: string) =>
    c.rest.request('put', '/api/v1/chat/messages/{id}/reactions/{emoji}', { params: { id: m.id, emoji } })
  const unreact = (c: ChatClient, m: Message, emoji: string) =>
    c.rest.request('delete', '/api/v1/chat/messages/{id}/reactions/{emoji}', { params: { id: m.id, emoji } })
  const pin = (c: ChatClient, m: Message) =>
    c.rest.request('put', '/api/v1/chat/messages/{id}/pin', { params: { id: m.id } })
  const unpin = (c: ChatClient, m: Message) =>
    c.rest.request('delete', '/api/v1/chat/messages/{id}/pin', { params: { id: m.id } })
  const send = async (c: ChatClient, conversationId: string, content: string, replyTo?: string) =>
    (await c.rest.post('/api/v1/chat/conversations/{id}/messages', {
      params: { id: conversationId },
      body: { content, ...(replyTo ? { reply_to: replyTo } : {}) },
    })) as Message
  /** What the server says now, for `c`. */
  const history = async (c: ChatClient, conversationId: string) =>
    (await c.history(conversationId, { limit: 100 })).items
  const same = (timeline: Timeline, truth: Message[]) => isDeepStrictEqual([...timeline.messages], truth)

  it('edits, deletes, reactions, threads and pins made while it was away, then live ones', async () => {
    const [ann, bob, cat] = [await user('Ann'), await user('Bob'), await user('Cat')]
    const group = await ann.conversations.createGroup({
      title: 'changes',
      member_ids: [bob.user?.id ?? '', cat.user?.id ?? ''],
    })
    const id = group.id
    const m = [] as Message[]
    for (let i = 1; i <= 5; i++) m.push(await send(ann, id, `m${i}`))
    const [m1, m2, m3, m4, m5] = m as [Message, Message, Message, Message, Message]
    await pin(ann, m4)
    await bob.connect()
    const timeline = bob.timeline(id)
    await timeline.loadOlder(50)
    await react(bob, m3, '👍')
    await until(bob, () => timeline.messages[2]?.reactions.length === 1, 'bob sees his reaction')
    expect(timeline.messages.map((x) => x.content)).toEqual(['m1', 'm2', 'm3', 'm4', 'm5'])

    bob.disconnect()
    await ann.rest.request('patch', '/api/v1/chat/messages/{id}', {
      params: { id: m1.id },
      body: { content: 'm1 edited' },
    })
    await ann.rest.delete('/api/v1/chat/messages/{id}', { params: { id: m2.id } })
    await react(cat, m3, '👍')
    await react(cat, m3, ':tada:')
    await unreact(cat, m3, ':tada:')
    await react(ann, m5, '🎉')
    await send(cat, id, 'reply', m1.id)
    await pin(ann, m3)
    await unpin(ann, m4)

    const synced = nextEvent(bob, 'changes.synced', (e) => e.conversationId === id)
    await bob.connect()
    expect(await synced).toMatchObject({ complete: true })
    await until(bob, () => timeline.messages.length === 6, 'the reply arrives')
    expect(timeline.messages).toEqual(await history(bob, id))
    const byContent = new Map(timeline.messages.map((x) => [x.content, x]))
    expect(byContent.get('m1 edited')?.thread).toMatchObject({ reply_count: 1 })
    expect(timeline.messages[1]?.deleted_at).not.toBeNull()
    expect(byContent.get('m3')?.reactions).toEqual([
      { emoji: '👍', count: 2, user_ids: [bob.user?.id, cat.user?.id], me: true },
    ])
    expect(byContent.get('m3')?.pinned_at).not.toBeNull()
    expect(byContent.get('m4')?.pinned_at).toBeNull()
    expect(byContent.get('m5')?.reactions).toEqual([
      { emoji: '🎉', count: 1, user_ids: [ann.user?.id], me: false },
    ])

    // Live, while connected: each change event patches the timeline.
    await react(cat, m4, ':ok:')
    await send(ann, id, 'second reply', m1.id)
    await unpin(ann, m3)
    const truth = async () => history(bob, id)
    await until(bob, () => timeline.messages.length === 7, 'the second reply arrives')
    const expected = await truth()
    const converged = new Promise<void>((resolve) => {
      if (same(timeline, expected)) resolve()
      timeline.on('change', (tl) => same(tl, expected) && resolve())
    })
    await converged
    expect(timeline.messages).toEqual(expected)

    // Nothing changed since: a reconnect re-sends nothing (the position moved with the live events).
    bob.disconnect()
    const frames: string[] = []
    const off = bob.on('message.changed', (e) => frames.push(e.messageId))
    await bob.connect()
    await bob.flushed()
    await react(ann, m1, ':ok:')
    await nextEvent(bob, 'message.changed', (e) => e.messageId === m1.id)
    off()
    expect(frames).toEqual([m1.id])
    timeline.dispose()
  })

  it('messages the retention expires while it is connected become tombstones at once, as history shows them', async () => {
    const [ann, bob] = [await user('Ann'), await user('Bob')]
    const group = await ann.conversations.createGroup({ title: 'expiry', member_ids: [bob.user?.id ?? ''] })
    const id = group.id
    const [m1, m2] = [await send(ann, id, 'old one'), await send(ann, id, 'old two')]
    await react(bob, m1, '👍')
    await pin(ann, m2)
    await bob.connect()
    await bob.conversations.load()
    const timeline = bob.timeline(id)
    await timeline.loadOlder(50)
    await until(bob, () => timeline.messages[1]?.pinned_at !== null, 'the pin is shown')

    const heard = nextEvent(bob, 'messages.expired', (e) => e.conversationId === id)
    const expiredAt = new Date(Date.now() + 3 * DAY)
    await retentionJob(t, 1, () => expiredAt).run()
    expect(await heard).toMatchObject({ seqs: [1, 2], expiredAt: expiredAt.toISOString() })

    // Shown as history now shows them; only the change numbers wait for the next sync's re-send.
    const withoutChange = (ms: readonly Message[]) => ms.map(({ change_seq: _, ...rest }) => rest)
    const truth = await history(bob, id)
    expect(truth.map((x) => [x.content, x.deleted_at])).toEqual([
      ['', expiredAt.toISOString()],
      ['', expiredAt.toISOString()],
    ])
    expect(withoutChange(timeline.messages)).toEqual(withoutChange(truth))
    const last = bob.conversations.get(id)?.last_message
    expect(last && withoutChange([last])).toEqual(withoutChange([truth[1] as Message]))
    timeline.dispose()
  })
})
