import { and, eq, sql } from 'drizzle-orm'
import { describe, expect, it } from 'vitest'
import { conversationMembers, conversations } from '../../src/store/schema.js'
import { useSocketApp } from '../helpers/socket-app.js'
import {
  addMember,
  directChat,
  type Frame,
  groupChat,
  range,
  removeMember,
  restSend,
  type TestSocket,
} from '../helpers/ws-client.js'

/** Membership changes reach sockets at once: a new member starts receiving, a removed one stops. */
describe('WebSocket membership', () => {
  const h = useSocketApp()
  const after = (s: TestSocket, pred: (f: Frame) => boolean) => s.frames.slice(s.frames.findIndex(pred) + 1)

  it('makes a user socket follow a conversation its user was just added to', async () => {
    const [a, b, c] = await h.trio()
    const conv = await groupChat(h.t.app, a, [b])
    await restSend(h.t.app, a, conv, 'before C joined')
    const [cUser, bUser] = [await h.userSocket(c), await h.userSocket(b)]
    await addMember(h.t.app, a, conv, c)
    // Sent the instant the add returns: it must still reach C's socket.
    await restSend(h.t.app, a, conv, 'welcome')
    const got = await cUser.waitFor((f) => f.type === 'message.new')
    expect(got).toMatchObject({ conversation_id: conv, message: { seq: 2, content: 'welcome' } })
    expect(await cUser.waitFor((f) => f.type === 'member.added')).toMatchObject({
      conversation_id: conv,
      user_id: c.id,
    })
    // Existing members hear about the newcomer.
    expect(await bUser.waitFor((f) => f.type === 'member.added')).toMatchObject({
      conversation_id: conv,
      user_id: c.id,
      role: 'member',
    })
    // And C can now talk there from the user socket.
    cUser.send({ type: 'message.send', conversation_id: conv, content: 'hi all', client_msg_id: 'c1' })
    await cUser.waitFor((f) => f.type === 'message.ack')
    await Promise.all([cUser.settle(), bUser.settle()])
    expect(cUser.seqs(conv)).toEqual([2, 3])
    expect(bUser.seqs(conv)).toEqual([2, 3])
  })

  it('tells members when the owner changes a role', async () => {
    const [a, b, c] = await h.trio()
    const conv = await groupChat(h.t.app, a, [b, c])
    const cUser = await h.userSocket(c)
    const res = await h.t.app.inject({
      method: 'PATCH',
      url: `/api/v1/chat/conversations/${conv}/members/${b.id}`,
      headers: a.auth,
      payload: { role: 'admin' },
    })
    expect(res.statusCode).toBe(200)
    expect(await cUser.waitFor((f) => f.type === 'member.updated')).toMatchObject({
      conversation_id: conv,
      user_id: b.id,
      role: 'admin',
    })
  })

  it('closes every socket of an account when it is deleted (4403)', async () => {
    const { a, b, conv } = await h.pair()
    const [userSock, convSock] = [await h.userSocket(b), await h.convSocket(b, conv)]
    const res = await h.t.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/me',
      headers: b.auth,
      payload: { password: b.password },
    })
    expect(res.statusCode).toBe(204)
    expect((await userSock.waitClose()).code).toBe(4403)
    expect((await convSock.waitClose()).code).toBe(4403)
    // The peer is unaffected.
    const peer = await h.userSocket(a)
    expect((await peer.waitFor((f) => f.type === 'ready')).user_id).toBe(a.id)
  })

  it('gives a user socket the conversations created after it opened', async () => {
    const [a, b] = await h.trio()
    const bUser = await h.userSocket(b)
    const conv = await directChat(h.t.app, a, b)
    await restSend(h.t.app, a, conv, 'first words')
    expect(await bUser.waitFor((f) => f.type === 'conversation.created')).toMatchObject({
      conversation_id: conv,
    })
    await bUser.collect('message.new', 1)
    await bUser.settle()
    expect(bUser.seqs(conv)).toEqual([1])
  })

  it('stops a removed member at once: member.removed and nothing after it on the user socket, 4403 on the conversation socket', async () => {
    const [a, b, c] = await h.trio()
    const conv = await groupChat(h.t.app, a, [b, c])
    const direct = await directChat(h.t.app, a, b)
    const [bUser, bConv, cConv] = [
      await h.userSocket(b),
      await h.convSocket(b, conv),
      await h.convSocket(c, conv),
    ]
    await restSend(h.t.app, a, conv, 'before')
    // Sends racing the removal: whichever commit after it must not reach B.
    const burst = Promise.all(range(1, 10).map((i) => restSend(h.t.app, a, conv, `during ${i}`)))
    await removeMember(h.t.app, a, conv, b)
    await burst
    await restSend(h.t.app, a, conv, 'after')
    cConv.send({ type: 'typing', state: 'start' })

    expect(await bConv.waitClose()).toMatchObject({ code: 4403 })
    const removed = await bUser.waitFor((f) => f.type === 'member.removed')
    expect(removed).toMatchObject({ conversation_id: conv, user_id: b.id })
    await cConv.collect('message.new', 12)
    // B's socket answers a resume of the conversation (from past anything B could have) with the
    // removal again, only once it no longer follows it, after anything it sent before: what B has
    // now is all it will ever get.
    const from = bUser.frames.length
    bUser.send({ type: 'sync', cursors: { [conv]: 1_000_000_000 } })
    expect(await bUser.waitFor((f) => f.type === 'member.removed', { from })).toMatchObject({
      conversation_id: conv,
    })
    const isRemoved = (f: Frame) => f.type === 'member.removed'
    expect(
      after(bUser, isRemoved).filter((f) => f.conversation_id === conv && f.type !== 'member.removed'),
    ).toEqual([])
    // What B got is an unbroken prefix: each message before the removal, once.
    const seen = bUser.seqs(conv)
    expect(seen).toEqual(range(1, seen.length))
    expect(seen.length).toBeLessThan(12)
    // The other members are told, and B's user socket keeps working for its other conversations.
    expect(await cConv.waitFor(isRemoved)).toMatchObject({ conversation_id: conv, user_id: b.id })
    const friends = await restSend(h.t.app, a, direct, 'still friends')
    expect(await bUser.waitFor((f) => f.type === 'message.new' && f.conversation_id === direct)).toEqual({
      type: 'message.new',
      conversation_id: direct,
      message: expect.objectContaining({
        id: friends.id,
        seq: friends.seq,
        content: 'still friends',
        sender_id: a.id,
      }),
    })
  })

  it('gives a removed member nothing after the removal from the store either (gap fill re-checks membership)', async () => {
    const [a, b, c] = await h.trio()
    const conv = await groupChat(h.t.app, a, [b, c])
    await restSend(h.t.app, a, conv, 'before')
    const { messages } = h.t.services
    expect((await messages.after(conv, 0, 100, c.id)).map((m) => m.content)).toEqual(['before'])
    await removeMember(h.t.app, a, conv, c)
    await restSend(h.t.app, a, conv, 'after')
    // What a feed of C's (on an instance the removal has not reached yet) would read to fill a gap:
    // what was committed while C was a member (a socket finishing its delivery needs it), nothing after.
    expect((await messages.after(conv, 0, 100, c.id)).map((m) => m.content)).toEqual(['before'])
    expect((await messages.after(conv, 0, 100, b.id)).map((m) => m.content)).toEqual(['before', 'after'])
  })

  it('re-checks membership when a message carries a removal the socket has not heard of', async () => {
    const [a, b, c] = await h.trio()
    const conv = await groupChat(h.t.app, a, [b, c])
    const [bUser, cUser] = [await h.userSocket(b), await h.userSocket(c)]
    // A removal committed by another instance whose event has not arrived here yet.
    const { db } = h.t.database
    await db
      .delete(conversationMembers)
      .where(and(eq(conversationMembers.conversationId, conv), eq(conversationMembers.userId, c.id)))
    await db
      .update(conversations)
      .set({ membersVersion: sql`${conversations.membersVersion} + 1` })
      .where(eq(conversations.id, conv))
    await restSend(h.t.app, a, conv, 'after the removal')
    expect(await cUser.waitFor((f) => f.type === 'member.removed')).toMatchObject({
      conversation_id: conv,
      user_id: c.id,
    })
    await bUser.waitFor((f) => f.type === 'message.new')
    await Promise.all([bUser.settle(), cUser.settle()])
    expect(bUser.seqs(conv)).toEqual([1])
    expect(cUser.seqs(conv)).toEqual([])
  })

  it('treats leaving like removal', async () => {
    const [a, b, c] = await h.trio()
    const conv = await groupChat(h.t.app, a, [b, c])
    const [bUser, bConv, cUser] = [await h.userSocket(b), await h.convSocket(b, conv), await h.userSocket(c)]
    await removeMember(h.t.app, b, conv, b)
    expect(await bConv.waitClose()).toMatchObject({ code: 4403 })
    expect(await bUser.waitFor((f) => f.type === 'member.removed')).toEqual({
      type: 'member.removed',
      conversation_id: conv,
      user_id: b.id,
    })
    const gone = await restSend(h.t.app, a, conv, 'gone')
    // Once a member who stays has it, the server has handled it for B too. B's socket answers a
    // resume of the conversation with not_found once it no longer follows it, after anything it
    // sent before: B's silence is then "nothing arrived, and nothing can", not "not yet".
    expect(await cUser.waitFor((f) => f.type === 'message.new' && f.conversation_id === conv)).toMatchObject({
      message: { id: gone.id, seq: gone.seq, content: 'gone' },
    })
    const from = bUser.frames.length
    bUser.send({ type: 'sync', cursors: { [conv]: 1_000_000_000 } })
    expect(await bUser.waitFor((f) => f.type === 'member.removed', { from })).toMatchObject({
      conversation_id: conv,
    })
    expect(bUser.seqs(conv)).toEqual([])
  })
})
