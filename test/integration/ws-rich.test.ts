import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MessageView } from '../../src/protocol/message.js'
import { redisUrl, registerUser, startInstances, type TestUser, uniquePrefix } from '../helpers/app.js'
import { TestSocket } from '../helpers/ws-client.js'

/**
 * Issue 14 on sockets, two instances through Redis: replies, thread summaries, reactions and pins
 * reach members on the other instance after the message they are about, with `me` per recipient;
 * and a resumed socket gets messages with their current reactions and thread summary.
 */
describe('rich messages across two instances', () => {
  let cluster: Awaited<ReturnType<typeof startInstances>>
  const sockets: TestSocket[] = []
  beforeAll(async () => {
    cluster = await startInstances(2, { url: redisUrl(), prefix: uniquePrefix('rich') })
  })
  afterAll(async () => {
    for (const s of sockets) s.close()
    await cluster?.close()
  })

  const node = (i: number) => cluster.node(i)
  const open = async (i: number, user: TestUser, query = '') => {
    const s = await TestSocket.open(`${node(i).url}/api/v1/chat/ws${query}`, { token: user.token })
    sockets.push(s)
    await s.waitFor((f) => f.type === 'ready')
    return s
  }
  const inject = (
    i: number,
    user: TestUser,
    method: 'POST' | 'PUT' | 'PATCH' | 'DELETE' | 'GET',
    url: string,
    payload?: object,
  ) =>
    node(i).app.inject({
      method,
      url: `/api/v1/chat${url}`,
      headers: user.auth,
      ...(payload ? { payload } : {}),
    })

  it('delivers replies, thread summaries, reactions (me per recipient) and pins to the other instance', async () => {
    const a = await registerUser(node(0).app, 'A')
    const b = await registerUser(node(1).app, 'B')
    const id = (await inject(0, a, 'POST', '/groups', { title: 'g', member_ids: [b.id] })).json().id as string
    const sa = await open(0, a)
    const sb = await open(1, b)
    sa.send({ type: 'message.send', conversation_id: id, content: 'root', client_msg_id: 'r' })
    const root = (await sa.waitFor((f) => f.type === 'message.ack')).message as MessageView
    sb.send({
      type: 'message.send',
      conversation_id: id,
      content: 'reply',
      reply_to: root.id,
      mentions: [a.id],
    })
    sb.send({ type: 'reaction.add', message_id: root.id, emoji: '🎉' })
    await inject(0, a, 'PUT', `/messages/${root.id}/pin`)
    for (const s of [sa, sb]) {
      const thread = await s.waitFor((f) => f.type === 'message.thread')
      expect(thread).toMatchObject({ message_id: root.id, thread: { reply_count: 1, participants: [b.id] } })
      const reactions = await s.waitFor((f) => f.type === 'message.reactions')
      expect(reactions).toMatchObject({ message_id: root.id, rev: 1 })
      expect(reactions.reactions).toEqual([{ emoji: '🎉', count: 1, user_ids: [b.id], me: s === sb }])
      await s.waitFor((f) => f.type === 'message.pinned' && f.message_id === root.id)
      const types = s.frames.map((f) => f.type).filter((t) => t !== 'ready' && t !== 'presence')
      // Every event about a message comes after that message.
      expect(types.indexOf('message.new')).toBeLessThan(types.indexOf('message.reactions'))
      const reply = s.frames.find(
        (f) => f.type === 'message.new' && (f.message as MessageView).content === 'reply',
      )?.message as MessageView
      expect(reply.reply_to).toMatchObject({ id: root.id, excerpt: 'root' })
      expect(reply.mentions).toEqual([a.id])
    }
  })

  it('resumes with each message carrying its current reactions and thread summary', async () => {
    const a = await registerUser(node(0).app, 'A2')
    const b = await registerUser(node(1).app, 'B2')
    const id = (await inject(0, a, 'POST', '/groups', { title: 'g', member_ids: [b.id] })).json().id as string
    const root = (await inject(0, a, 'POST', `/conversations/${id}/messages`, { content: 'root' })).json()
    await inject(0, a, 'POST', `/conversations/${id}/messages`, { content: 're', reply_to: root.id })
    await inject(1, b, 'PUT', `/messages/${root.id}/reactions/${encodeURIComponent('👍')}`)
    const sb = await open(1, b, '?resume=true')
    sb.send({ type: 'sync', cursors: { [id]: 0 } })
    const [first] = await sb.collect('message.new', 2)
    const m = first?.message as MessageView
    expect(m.seq).toBe(1)
    expect(m.reactions).toEqual([{ emoji: '👍', count: 1, user_ids: [b.id], me: true }])
    expect(m.thread).toMatchObject({ reply_count: 1, participants: [a.id] })
    expect(m.pinned_at).toBeNull()
  })

  it('re-sends, on sync with changes, what changed on the other instance while the socket was away', async () => {
    const a = await registerUser(node(0).app, 'A3')
    const b = await registerUser(node(1).app, 'B3')
    const id = (await inject(0, a, 'POST', '/groups', { title: 'g', member_ids: [b.id] })).json().id as string
    const sent: MessageView[] = []
    for (const content of ['one', 'two', 'three', 'four'])
      sent.push((await inject(0, a, 'POST', `/conversations/${id}/messages`, { content })).json())
    const [one, two, three, four] = sent as [MessageView, MessageView, MessageView, MessageView]
    await inject(0, a, 'PUT', `/messages/${four.id}/pin`)
    const listed = (await inject(1, b, 'GET', `/conversations/${id}`)).json()
    expect(listed.change_seq).toBe(1)
    expect(listed.last_message).toMatchObject({ id: four.id, pinned_at: expect.any(String), change_seq: 1 })

    // B holds the four messages and change 1, then goes away; A changes them on instance 0.
    await inject(0, a, 'PATCH', `/messages/${one.id}`, { content: 'one!' })
    await inject(0, a, 'DELETE', `/messages/${two.id}`)
    await inject(0, a, 'PUT', `/messages/${three.id}/reactions/${encodeURIComponent('👍')}`)
    await inject(1, b, 'PUT', `/messages/${three.id}/reactions/${encodeURIComponent('👍')}`)
    await inject(0, a, 'POST', `/conversations/${id}/messages`, { content: 're', reply_to: one.id })
    await inject(0, a, 'DELETE', `/messages/${four.id}/pin`)
    await inject(0, a, 'PUT', `/messages/${three.id}/pin`)

    const sb = await open(1, b, '?resume=true')
    sb.send({ type: 'sync', cursors: { [id]: 4 }, changes: { [id]: 1 } })
    const done = await sb.waitFor((f) => f.type === 'changes.synced', { timeoutMs: 10_000 })
    expect(done).toMatchObject({ conversation_id: id, change_seq: 8, complete: true })
    await sb.collect('message.new', 1)
    // Exactly the four messages, once each, in change order: the newest state of each.
    const changed = sb.frames.filter((f) => f.type === 'message.changed').map((f) => f.message as MessageView)
    expect(changed.map((m) => m.seq)).toEqual([2, 1, 4, 3])
    const held = new Map<number, MessageView>(sent.map((m) => [m.seq, m]))
    for (const f of sb.frames)
      if (f.type === 'message.new' || f.type === 'message.changed') {
        const m = f.message as MessageView
        if ((held.get(m.seq)?.change_seq ?? -1) <= m.change_seq) held.set(m.seq, m)
      }
    const history = (await inject(1, b, 'GET', `/conversations/${id}/messages`)).json().items
    expect([...held.values()].sort((x, y) => x.seq - y.seq)).toEqual(history)
    expect(history[2].reactions).toEqual([{ emoji: '👍', count: 2, user_ids: [a.id, b.id], me: true }])

    // From the position it was given, a second sync has nothing to re-send.
    const again = await open(1, b, '?resume=true')
    again.send({ type: 'sync', cursors: { [id]: 5 }, changes: { [id]: 8 } })
    await inject(0, a, 'POST', `/conversations/${id}/messages`, { content: 'after' })
    await again.waitFor((f) => f.type === 'message.new' && (f.message as MessageView).seq === 6)
    expect(again.frames.filter((f) => f.type === 'message.changed' || f.type === 'changes.synced')).toEqual(
      [],
    )
  })
})
