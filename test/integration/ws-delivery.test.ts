import { describe, expect, it } from 'vitest'
import { registerUser } from '../helpers/app.js'
import { lockConversations } from '../helpers/pg.js'
import { useSocketApp } from '../helpers/socket-app.js'
import {
  directChat,
  groupChat,
  history,
  range,
  restDelete,
  restEdit,
  restSend,
  type TestSocket,
} from '../helpers/ws-client.js'

/** Live delivery: exactly once, in seq order, acks after commit, idempotent retries, REST and socket alike. */
describe('WebSocket delivery', () => {
  const h = useSocketApp()

  /** Waits for `n` message.new frames, then checks nothing more (no duplicate) and their order. */
  const expectSeqs = async (s: TestSocket, conv: string, n: number) => {
    await s.collect('message.new', n, 15_000, (f) => f.conversation_id === conv)
    await s.settle()
    expect(s.seqs(conv)).toEqual(range(1, n))
  }

  it('delivers each message.new exactly once to every socket of every member, the sender included', async () => {
    const { a, b, conv } = await h.pair()
    const [a1, a2, aConv, b1] = [
      await h.userSocket(a),
      await h.userSocket(a),
      await h.convSocket(a, conv),
      await h.userSocket(b),
    ]
    aConv.send({ type: 'message.send', content: 'from the conversation socket', client_msg_id: 'm1' })
    a1.send({
      type: 'message.send',
      conversation_id: conv,
      content: 'from a user socket',
      client_msg_id: 'm2',
    })
    await restSend(h.t.app, b, conv, 'over REST')
    for (const s of [a1, a2, aConv, b1]) await expectSeqs(s, conv, 3)
    // Acks go to the sending socket only.
    expect(aConv.ofType('message.ack').map((f) => f.client_msg_id)).toEqual(['m1'])
    expect(a1.ofType('message.ack').map((f) => f.client_msg_id)).toEqual(['m2'])
    expect(a2.ofType('message.ack')).toEqual([])
  })

  it('delivers a message sent the instant a socket opens (registered before the upgrade completes)', async () => {
    const { a, b, conv } = await h.pair()
    const send = (content: string) => h.t.services.messages.send(b.id, conv, content)
    const userSock = await h.userSocket(a)
    await send('the instant the user socket opened')
    const convSock = await h.convSocket(a, conv)
    await send('the instant the conversation socket opened')
    await expectSeqs(userSock, conv, 2)
    await convSock.collect('message.new', 1)
    await convSock.settle()
    expect(convSock.seqs(conv)).toEqual([2])
  })

  it("relays a member's read marker to the other members", async () => {
    const { a, b, conv } = await h.pair()
    const [aUser, bConv] = [await h.userSocket(a), await h.convSocket(b, conv)]
    await restSend(h.t.app, a, conv, 'read me')
    bConv.send({ type: 'read', seq: 1 })
    expect(await aUser.waitFor((f) => f.type === 'read')).toEqual({
      type: 'read',
      conversation_id: conv,
      user_id: b.id,
      seq: 1,
    })
  })

  it('acks only once the message is committed, with the stored message', async () => {
    const { a, conv } = await h.pair()
    const s = await h.convSocket(a, conv)
    const url = (h.t.database as { url?: string }).url
    if (!url) throw new Error('this test needs the PostgreSQL driver')
    // Hold the conversation row lock the writer needs, so the send cannot commit until we let go.
    const lock = await lockConversations(url, [conv])
    try {
      s.send({ type: 'message.send', content: 'waits for the lock', client_msg_id: 'c-lock' })
      await s.settle()
      expect(s.ofType('message.ack')).toEqual([])
      expect(await history(h.t.app, a, conv)).toEqual([])
      await lock.release()
      const ack = await s.waitFor((f) => f.type === 'message.ack')
      const [stored] = await history(h.t.app, a, conv)
      expect(ack).toEqual({ type: 'message.ack', client_msg_id: 'c-lock', message: stored })
      expect(stored).toMatchObject({ seq: 1, content: 'waits for the lock', sender_id: a.id })
    } finally {
      await lock.release()
    }
  })

  it('answers a send that fails with an error carrying its client_msg_id, and stores nothing', async () => {
    const { a, b, conv } = await h.pair()
    const [s, peer] = [await h.convSocket(a, conv), await h.userSocket(b)]
    s.send({ type: 'message.send', content: '   ', client_msg_id: 'blank' })
    const err = await s.waitFor((f) => f.type === 'error')
    expect(err).toMatchObject({ code: 'validation_failed', client_msg_id: 'blank' })
    await Promise.all([s.settle(), peer.settle()])
    expect([...s.ofType('message.ack'), ...s.ofType('message.new'), ...peer.ofType('message.new')]).toEqual(
      [],
    )
    expect(await history(h.t.app, a, conv)).toEqual([])
  })

  it('keeps seq strictly increasing on every socket under concurrent senders on sockets and REST', async () => {
    const [a, b, c] = [
      await registerUser(h.t.app, 'A'),
      await registerUser(h.t.app, 'B'),
      await registerUser(h.t.app, 'C'),
    ]
    const conv = await groupChat(h.t.app, a, [b, c])
    const aUser = await h.userSocket(a)
    const aConv = await h.convSocket(a, conv)
    const bUser = await h.userSocket(b)
    const bConv = await h.convSocket(b, conv)
    const cUser = await h.userSocket(c)
    const perSender = 20
    const rest = Promise.all(range(1, perSender).map((i) => restSend(h.t.app, b, conv, `rest ${i}`)))
    for (const i of range(1, perSender)) {
      aConv.send({ type: 'message.send', content: `a-conv ${i}`, client_msg_id: `ac${i}` })
      aUser.send({
        type: 'message.send',
        conversation_id: conv,
        content: `a-user ${i}`,
        client_msg_id: `au${i}`,
      })
      bUser.send({
        type: 'message.send',
        conversation_id: conv,
        content: `b-user ${i}`,
        client_msg_id: `bu${i}`,
      })
    }
    await rest
    const total = 4 * perSender
    for (const s of [aUser, aConv, bUser, bConv, cUser]) await expectSeqs(s, conv, total)
    for (const s of [aConv, aUser, bUser]) expect(s.ofType('message.ack')).toHaveLength(perSender)
    expect((await history(h.t.app, a, conv)).map((m) => m.seq)).toEqual(range(1, total))
  })

  it("accepts the seed's frame as is on the conversation socket", async () => {
    const { a, b, conv } = await h.pair()
    const [s, peer] = [await h.convSocket(a, conv), await h.convSocket(b, conv)]
    s.send('{"type":"message.send","content":"hello"}')
    const ack = await s.waitFor((f) => f.type === 'message.ack')
    expect(ack).toMatchObject({ client_msg_id: null, message: { content: 'hello', seq: 1, sender_id: a.id } })
    const got = await peer.waitFor((f) => f.type === 'message.new')
    expect(got).toMatchObject({ type: 'message.new', message: { content: 'hello', seq: 1 } })
  })

  it('requires conversation_id on the user socket, and membership of it', async () => {
    const { a, b, conv } = await h.pair()
    const stranger = await registerUser(h.t.app, 'Eve')
    const other = await directChat(h.t.app, b, stranger)
    const s = await h.userSocket(a)
    s.send({ type: 'message.send', content: 'where to?', client_msg_id: 'no-conv' })
    expect(await s.waitFor((f) => f.type === 'error')).toMatchObject({
      code: 'validation_failed',
      client_msg_id: 'no-conv',
    })
    s.send({ type: 'message.send', conversation_id: other, content: 'not mine', client_msg_id: 'foreign' })
    expect(await s.waitFor((f) => f.type === 'error' && f.client_msg_id === 'foreign')).toMatchObject({
      code: 'not_found',
    })
    await s.settle()
    expect(s.ofType('message.ack')).toEqual([])
    expect(await history(h.t.app, a, conv)).toEqual([])
    expect(await history(h.t.app, b, other)).toEqual([])
  })

  it('answers a retried send with the original message: one row, one broadcast', async () => {
    const { a, b, conv } = await h.pair()
    const [s, mine, peer] = [await h.convSocket(a, conv), await h.userSocket(a), await h.userSocket(b)]
    const send = () => s.send({ type: 'message.send', content: 'once', client_msg_id: 'retry-1' })
    send()
    const first = await s.waitFor((f) => f.type === 'message.ack')
    // A retry after the ack, and two more back to back (likely in one commit batch).
    send()
    send()
    send()
    const acks = await s.collect('message.ack', 4)
    const again = await restSend(h.t.app, a, conv, 'once', 'retry-1')
    for (const ack of acks) expect(ack.message).toEqual(first.message)
    expect(again).toEqual(first.message)
    for (const x of [s, mine, peer]) await x.settle()
    for (const x of [s, mine, peer]) expect(x.seqs(conv)).toEqual([1])
    expect(await history(h.t.app, a, conv)).toHaveLength(1)
  })

  it('carries REST and socket sends, edits and deletes to sockets through one event path', async () => {
    const { a, b, conv } = await h.pair()
    const [bUser, bConv, aConv] = [
      await h.userSocket(b),
      await h.convSocket(b, conv),
      await h.convSocket(a, conv),
    ]
    const sent = await restSend(h.t.app, a, conv, 'draft')
    await restEdit(h.t.app, a, sent.id, 'final')
    await restDelete(h.t.app, a, sent.id)
    for (const s of [bUser, bConv]) {
      await s.collect('message.deleted', 1)
      const events = s.frames.filter((f) => f.type.startsWith('message.'))
      expect(events.map((f) => f.type)).toEqual(['message.new', 'message.updated', 'message.deleted'])
      expect(events.map((f) => f.conversation_id)).toEqual([conv, conv, conv])
      expect(events[1]?.message).toMatchObject({
        id: sent.id,
        content: 'final',
        edited_at: expect.any(String),
      })
      expect(events[2]?.message).toMatchObject({
        id: sent.id,
        seq: 1,
        content: '',
        deleted_at: expect.any(String),
      })
    }
    // The same three through socket frames.
    aConv.send({ type: 'message.send', content: 'second', client_msg_id: 'x' })
    const ack = await aConv.waitFor((f) => f.type === 'message.ack')
    const id = (ack.message as { id: string }).id
    aConv.send({ type: 'message.edit', message_id: id, content: 'second, edited' })
    await bUser.waitFor((f) => f.type === 'message.updated' && (f.message as { id: string }).id === id)
    aConv.send({ type: 'message.delete', message_id: id })
    await bUser.waitFor((f) => f.type === 'message.deleted' && (f.message as { id: string }).id === id)
    await bUser.settle()
    expect(bUser.seqs(conv)).toEqual([1, 2])
  })
})
