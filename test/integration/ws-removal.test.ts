import { and, eq } from 'drizzle-orm'
import { describe, expect, it } from 'vitest'
import { conversationDepartures } from '../../src/store/schema.js'
import { useSocketApp } from '../helpers/socket-app.js'
import { groupChat, range, removeMember, restSend, TestSocket, userSocketUrl } from '../helpers/ws-client.js'

/**
 * A removed member gets every message committed while they were a member (seq ≤ the removal's
 * seq R), then `member.removed`, then nothing more of the conversation — whatever their socket
 * was doing when the removal came (issue 10, defect 6: sockets stopped at 249 with R = 390).
 */
describe('removal while messages flow', () => {
  const h = useSocketApp()

  it('delivers up to the removal to a socket that had not caught up yet', async () => {
    const [a, b] = await h.trio()
    const conv = await groupChat(h.t.app, a, [b])
    // Held until its first frame: nothing is delivered before the removal.
    const bSocket = h.track(
      await TestSocket.open(`${userSocketUrl(h.t.url)}?resume=true`, { token: b.token }),
    )
    for (const i of range(1, 5)) await restSend(h.t.app, a, conv, `m${i}`)
    await removeMember(h.t.app, a, conv, b)
    await restSend(h.t.app, a, conv, 'after removal')
    bSocket.send({ type: 'sync', cursors: { [conv]: 0 } })
    const removed = await bSocket.waitFor((f) => f.type === 'member.removed')
    expect(removed).toMatchObject({ conversation_id: conv, user_id: b.id })
    await bSocket.settle()
    expect(bSocket.seqs(conv)).toEqual([1, 2, 3, 4, 5])
    // The removal comes after the last message the member may see.
    const order = bSocket.frames.filter((f) => f.type === 'message.new' || f.type === 'member.removed')
    expect(order.at(-1)?.type).toBe('member.removed')
    expect(bSocket.ofType('error')).toEqual([])
  })

  it('lets a member removed while away resume what they missed up to the removal, and no further', async () => {
    const [a, b] = await h.trio()
    const conv = await groupChat(h.t.app, a, [b])
    await restSend(h.t.app, a, conv, 'seen')
    for (const i of range(2, 4)) await restSend(h.t.app, a, conv, `missed ${i}`)
    await removeMember(h.t.app, a, conv, b)
    await restSend(h.t.app, a, conv, 'not for b')
    const bSocket = await h.userSocket(b)
    await bSocket.waitFor((f) => f.type === 'ready')
    bSocket.send({ type: 'sync', cursors: { [conv]: 1 } })
    expect(await bSocket.waitFor((f) => f.type === 'member.removed')).toMatchObject({
      conversation_id: conv,
      user_id: b.id,
    })
    await bSocket.settle()
    expect(bSocket.seqs(conv)).toEqual([2, 3, 4])
    expect(bSocket.ofType('error')).toEqual([])
    // Nothing more arrives from the conversation, live or by another sync.
    await restSend(h.t.app, a, conv, 'later')
    bSocket.send({ type: 'sync', cursors: { [conv]: 4 } })
    await bSocket.waitFor((f) => f.type === 'member.removed', { from: bSocket.frames.length })
    await bSocket.settle()
    expect(bSocket.seqs(conv)).toEqual([2, 3, 4])
    // A stranger's sync for the same conversation is still not_found.
  })

  it('gives every seq up to the removal, exactly once and in order, under a flood of sends', async () => {
    const [a, b, c] = await h.trio()
    const conv = await groupChat(h.t.app, a, [b, c])
    const bSocket = await h.userSocket(b)
    const cSocket = await h.userSocket(c)
    const senders = [a, c]
    const sends = range(1, 300).map((i) => restSend(h.t.app, senders[i % 2] as typeof a, conv, `m${i}`))
    // Removed mid-flood: R is whatever seq the conversation had reached.
    await Promise.all(sends.slice(0, 150))
    await removeMember(h.t.app, a, conv, b)
    await Promise.all(sends)
    const removed = await bSocket.waitFor((f) => f.type === 'member.removed', { timeoutMs: 15000 })
    expect(removed).toMatchObject({ conversation_id: conv, user_id: b.id })
    await cSocket.collect('message.new', 300, 15000)
    await bSocket.settle()
    const [departure] = await h.t.database.db
      .select({ r: conversationDepartures.lastSeq })
      .from(conversationDepartures)
      .where(and(eq(conversationDepartures.conversationId, conv), eq(conversationDepartures.userId, b.id)))
    expect(departure?.r).toBeGreaterThanOrEqual(150)
    expect(bSocket.seqs(conv)).toEqual(range(1, departure?.r ?? 0))
    expect(cSocket.seqs(conv)).toEqual(range(1, 300))
  })
})
