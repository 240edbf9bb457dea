import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { UnavailableError } from '../../src/errors.js'
import { MessageWriter, OverloadedError, type SendResult } from '../../src/services/message-writer.js'
import type { Database } from '../../src/store/db.js'
import { messages } from '../../src/store/schema.js'
import { DRIVERS, openTestDatabase } from '../helpers/database.js'
import { useSocketApp } from '../helpers/socket-app.js'
import { seedConversation } from '../helpers/writer.js'
import { restSend } from '../helpers/ws-client.js'

/**
 * Overload: past MESSAGE_QUEUE_MAX waiting sends, a send is refused at once and explicitly
 * (`unavailable` error frame, 503 with Retry-After), never queued without bound and never
 * silently lost; what was accepted is stored and delivered once, in order.
 */
describe.each(DRIVERS)('MessageWriter queue bound on %s', (driver) => {
  let database: Database
  beforeAll(async () => {
    database = await openTestDatabase(driver)
  })
  afterAll(async () => database?.close())

  it('refuses sends past the bound with OverloadedError, stores the accepted ones in order, and counts the shed', async () => {
    const c = await seedConversation(database.db)
    const shed: string[] = []
    const committed: string[] = []
    const writer = new MessageWriter(
      database.db,
      {
        maxBatch: 2,
        maxQueue: 3,
        probe: { stage: () => {}, batch: () => {}, shed: (reason) => shed.push(reason) },
      },
      (created) => committed.push(...created.map((m) => m.content)),
    )
    // The first send starts a transaction at once; the conversation is then busy, so the next
    // three wait in the queue and fill it; the six after them are refused.
    const sends = Array.from({ length: 10 }, (_, i) =>
      writer.append({
        conversationId: c.id,
        senderId: c.members[0] as string,
        content: `m${i}`,
        clientMsgId: null,
      }),
    )
    const outcomes = await Promise.allSettled(sends)
    const accepted = outcomes.flatMap((o) => (o.status === 'fulfilled' ? [o.value as SendResult] : []))
    const refused = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as unknown] : []))
    expect(accepted.map((r) => [r.message.content, r.message.seq])).toEqual([
      ['m0', 1],
      ['m1', 2],
      ['m2', 3],
      ['m3', 4],
    ])
    expect(refused).toHaveLength(6)
    for (const err of refused) {
      expect(err).toBeInstanceOf(OverloadedError)
      expect(err).toBeInstanceOf(UnavailableError)
      expect((err as UnavailableError).retryAfterSec).toBe(1)
    }
    expect(shed).toEqual(Array(6).fill('queue_full'))
    expect(committed).toEqual(['m0', 'm1', 'm2', 'm3'])
    const rows = await database.db
      .select()
      .from(messages)
      .where(eq(messages.conversationId, c.id))
      .orderBy(asc(messages.seq))
    expect(rows.map((m) => m.content)).toEqual(['m0', 'm1', 'm2', 'm3'])
    // Room again once the queue drained: the bound refuses only while it is full.
    const later = await writer.append({
      conversationId: c.id,
      senderId: c.members[0] as string,
      content: 'later',
      clientMsgId: null,
    })
    expect(later.message.seq).toBe(5)
  })
})

describe('Sends past MESSAGE_QUEUE_MAX over the socket and REST', () => {
  const h = useSocketApp({ MESSAGE_QUEUE_MAX: '1' })

  it('answers every send with its ack or an `unavailable` error frame; the acked ones reach the peer once, in order', async () => {
    const { a, b, conv } = await h.pair()
    const sender = await h.userSocket(a)
    const peer = await h.userSocket(b)
    // Written together, so the server reads them in one go while the first is being stored.
    const raw = (sender.ws as unknown as { _socket: { cork(): void; uncork(): void } })._socket
    raw.cork()
    const n = 20
    for (let i = 0; i < n; i++)
      sender.send({ type: 'message.send', conversation_id: conv, content: `m${i}`, client_msg_id: `c${i}` })
    raw.uncork()
    const answered = (cmid: string) => (f: { type: string; client_msg_id?: unknown; message?: unknown }) =>
      (f.type === 'message.ack' && (f.message as { client_msg_id: string }).client_msg_id === cmid) ||
      (f.type === 'error' && f.client_msg_id === cmid)
    for (let i = 0; i < n; i++) await sender.waitFor(answered(`c${i}`), { timeoutMs: 15_000 })
    const acks = sender.ofType('message.ack').map((f) => f.message as { client_msg_id: string; seq: number })
    const errors = sender.ofType('error')
    expect(acks.length + errors.length).toBe(n)
    expect(errors.length).toBeGreaterThan(0)
    for (const e of errors) {
      expect(e.code).toBe('unavailable')
      expect(String(e.message)).toContain('overloaded')
    }
    // Accepted sends keep their order and their seqs have no gaps.
    expect(acks.map((m) => m.seq)).toEqual(acks.map((_, i) => i + 1))
    const order = acks.map((m) => Number(m.client_msg_id.slice(1)))
    expect(order).toEqual([...order].sort((x, y) => x - y))
    // Each acked message reaches the peer exactly once, in order; a refused one never does.
    await peer.collect('message.new', acks.length, 15_000)
    await peer.settle()
    expect(peer.seqs(conv)).toEqual(acks.map((m) => m.seq))
    const refused = new Set(errors.map((e) => e.client_msg_id))
    for (const f of peer.ofType('message.new'))
      expect(refused.has((f.message as { client_msg_id: string }).client_msg_id)).toBe(false)
    // The shed sends are counted for operators.
    const metrics = await h.t.services.metrics.registry.getSingleMetricAsString('chat_sends_shed_total')
    expect(metrics).toMatch(new RegExp(`chat_sends_shed_total\\{reason="queue_full"\\} ${errors.length}\\b`))

    // Over REST the same refusal is a 503 with Retry-After (sends queued behind a socket burst).
    const burst = Array.from({ length: 10 }, (_, i) =>
      h.t.app.inject({
        method: 'POST',
        url: `/api/v1/chat/conversations/${conv}/messages`,
        headers: { authorization: `Bearer ${a.token}` },
        payload: { content: `rest ${i}` },
      }),
    )
    const answers = await Promise.all(burst)
    const unavailable = answers.filter((r) => r.statusCode === 503)
    expect(unavailable.length).toBeGreaterThan(0)
    expect(answers.every((r) => r.statusCode === 201 || r.statusCode === 503)).toBe(true)
    for (const r of unavailable) {
      expect(r.headers['retry-after']).toBe('1')
      expect(r.headers['content-type']).toContain('application/problem+json')
    }
    // And a send once the queue has drained is accepted again.
    await expect(restSend(h.t.app, a, conv, 'after the burst')).resolves.toMatchObject({
      content: 'after the burst',
    })
  })
})

describe('A socket sending faster than storage', () => {
  const h = useSocketApp({ MESSAGE_QUEUE_MAX: '2000' })

  it('is read only as fast as sends are stored: a flood three times the bound is accepted whole, in order', async () => {
    const { a, b, conv } = await h.pair()
    const sender = await h.userSocket(a)
    const peer = await h.userSocket(b)
    // 6,000 frames written at once: far more than the queue holds. Before reads were held, the
    // server read them all and refused most with `unavailable`; now it stops reading at half the
    // bound (a TCP read holds at most a few hundred of these frames, within the other half).
    const n = 6000
    for (let i = 0; i < n; i++)
      sender.send({ type: 'message.send', conversation_id: conv, content: `f${i}`, client_msg_id: `f${i}` })
    const answered = (f: { type: string; client_msg_id?: unknown; message?: unknown }) =>
      (f.type === 'message.ack' && (f.message as { client_msg_id: string }).client_msg_id === `f${n - 1}`) ||
      (f.type === 'error' && f.client_msg_id === `f${n - 1}`)
    await sender.waitFor(answered, { timeoutMs: 60_000 })
    expect(sender.ofType('error')).toEqual([])
    const acks = sender.ofType('message.ack').map((f) => f.message as { client_msg_id: string; seq: number })
    expect(acks.map((m) => m.client_msg_id)).toEqual(Array.from({ length: n }, (_, i) => `f${i}`))
    expect(acks.map((m) => m.seq)).toEqual(acks.map((_, i) => i + 1))
    await peer.collect('message.new', n, 60_000)
    expect(peer.seqs(conv)).toEqual(acks.map((m) => m.seq))
  }, 120_000)
})

describe('Many sockets held while storage is behind', () => {
  const h = useSocketApp({ MESSAGE_QUEUE_MAX: '100' })

  it('are all resumed in the end (a few per batch, then all once idle): every send is answered', async () => {
    // More held sockets than are resumed per batch (32), so the last ones wait for the idle point.
    const senders = await Promise.all(
      Array.from({ length: 40 }, async () => {
        const { a, conv } = await h.pair()
        return { socket: await h.userSocket(a), conv }
      }),
    )
    const n = 60
    for (const { socket, conv } of senders)
      for (let i = 0; i < n; i++)
        socket.send({ type: 'message.send', conversation_id: conv, content: `x${i}`, client_msg_id: `x${i}` })
    // Refusals answer at once and acks after storage, so the last send's answer can come first.
    const answered = (socket: (typeof senders)[number]['socket']) =>
      socket.ofType('message.ack').length + socket.ofType('error').length
    for (const { socket } of senders) await expect.poll(() => answered(socket), { timeout: 60_000 }).toBe(n)
    for (const { socket } of senders) {
      for (const e of socket.ofType('error')) expect(e.code).toBe('unavailable')
    }
  }, 120_000)
})
