import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/store/db.js'
import { messages } from '../../src/store/schema.js'
import { openTestDatabase } from '../helpers/database.js'
import { drained } from '../helpers/feed-fakes.js'
import { lockConversations } from '../helpers/pg.js'
import { countTransactions, seedConversation, startWriter, track } from '../helpers/writer.js'

/**
 * How the writer forms batches. A batch is held in flight by locking its conversation's row from
 * another connection (as another instance's transaction would): nothing here waits on time.
 * The writers pipeline their COMMIT behind a plain batch's insert, as in production on PostgreSQL.
 */
describe('MessageWriter batching on PostgreSQL', () => {
  let database: Database & { url?: string }
  let url: string
  beforeAll(async () => {
    database = await openTestDatabase('postgres')
    url = database.url as string
  })
  afterAll(async () => database?.close())

  const seed = () => seedConversation(database.db, 1)

  const seqsOf = async (conversationId: string) =>
    (
      await database.db
        .select()
        .from(messages)
        .where(eq(messages.conversationId, conversationId))
        .orderBy(asc(messages.seq))
    ).map((m) => [m.seq, m.content])

  it('puts at most maxBatch queued sends in one transaction', async () => {
    const [x, y, c] = await Promise.all([seed(), seed(), seed()])
    const { send, batches } = startWriter(database.db, 3, true)
    const lock = await lockConversations(url, [x.id, y.id])
    const x1 = send(x.id, x.members[0] as string, 'x1')
    const y1 = send(y.id, y.members[0] as string, 'y1')
    const queued = [1, 2, 3, 4, 5].map((i) => send(c.id, c.members[0] as string, `c${i}`))
    await lock.release()
    await Promise.all([x1, y1, ...queued])
    expect(batches().filter((b) => b[0]?.startsWith('c'))).toEqual([
      ['c1', 'c2', 'c3'],
      ['c4', 'c5'],
    ])
    expect(await seqsOf(c.id)).toEqual([1, 2, 3, 4, 5].map((i) => [i, `c${i}`]))
  })

  it('keeps a busy conversation first in, first out while other conversations go ahead', async () => {
    const [x, y, z, w] = await Promise.all([seed(), seed(), seed(), seed()])
    const { send, batches } = startWriter(database.db, 100, true)
    const lockX = await lockConversations(url, [x.id])
    const lockY = await lockConversations(url, [y.id])
    const [ux, uy, uz, uw] = [x, y, z, w].map((c) => c.members[0] as string) as [
      string,
      string,
      string,
      string,
    ]
    const x1 = send(x.id, ux, 'x1')
    const y1 = send(y.id, uy, 'y1')
    const x2 = send(x.id, ux, 'x2')
    const z1 = send(z.id, uz, 'z1')
    const x3 = send(x.id, ux, 'x3')
    const z2 = send(z.id, uz, 'z2')
    await lockY.release()
    await Promise.all([y1, z1, z2])
    await drained()
    expect(batches()).toEqual([['y1'], ['z1', 'z2']])
    // Only sends to the busy conversation are queued now; a send elsewhere still starts at once.
    await send(w.id, uw, 'w1')
    expect(batches().at(-1)).toEqual(['w1'])
    await lockX.release()
    await Promise.all([x1, x2, x3])
    expect(batches().slice(-2)).toEqual([['x1'], ['x2', 'x3']])
    expect(await seqsOf(x.id)).toEqual([
      [1, 'x1'],
      [2, 'x2'],
      [3, 'x3'],
    ])
  })

  it('has at most 2 transactions in flight; the next batch starts when one ends', async () => {
    const [x, y, z] = await Promise.all([seed(), seed(), seed()])
    const { db, stats } = countTransactions(database.db)
    const { send, batches } = startWriter(db, 100, true)
    const lockX = await lockConversations(url, [x.id])
    const lockY = await lockConversations(url, [y.id])
    const x1 = send(x.id, x.members[0] as string, 'x1')
    const y1 = track(send(y.id, y.members[0] as string, 'y1'))
    const z1 = track(send(z.id, z.members[0] as string, 'z1'))
    expect(stats.started).toBe(2)
    await drained()
    expect(z1.settled).toBe(false)
    await lockX.release()
    await Promise.all([x1, z1.promise])
    expect(batches()).toEqual([['x1'], ['z1']])
    expect(y1.settled).toBe(false)
    await lockY.release()
    await y1.promise
    expect(stats).toEqual({ started: 3, open: 0, maxOpen: 2 })
  })

  it('flushed() waits for every send in flight, not only for the first to finish', async () => {
    const [x, y] = await Promise.all([seed(), seed()])
    const { writer, send } = startWriter(database.db, 100, true)
    const lockX = await lockConversations(url, [x.id])
    const lockY = await lockConversations(url, [y.id])
    const x1 = track(send(x.id, x.members[0] as string, 'x1'))
    const y1 = send(y.id, y.members[0] as string, 'y1')
    const flushed = track(writer.flushed())
    await lockY.release()
    await y1
    await drained()
    expect(flushed.settled).toBe(false)
    await lockX.release()
    await flushed.promise
    expect(x1.settled).toBe(true)
  })

  it('flushed() waits for sends queued behind a busy conversation', async () => {
    const x = await seedConversation(database.db, 1)
    const { writer, send } = startWriter(database.db, 100, true)
    const lock = await lockConversations(url, [x.id])
    const x1 = track(send(x.id, x.members[0] as string, 'x1'))
    const x2 = track(send(x.id, x.members[0] as string, 'x2'))
    const flushed = track(writer.flushed())
    await drained()
    expect(flushed.settled).toBe(false)
    await lock.release()
    await flushed.promise
    expect([x1.settled, x2.settled]).toEqual([true, true])
  })

  it('two instances sending to the same conversations in opposite orders commit whole batches (no deadlock)', async () => {
    const [a, b] = await Promise.all([seed(), seed()])
    const slots = await Promise.all([seed(), seed(), seed(), seed()])
    const lock = await lockConversations(
      url,
      slots.map((s) => s.id),
    )
    const one = startWriter(database.db, 100, true)
    const two = startWriter(database.db, 100, true)
    const [s1, s2, s3, s4] = slots
    const ua = a.members[0] as string
    const ub = b.members[0] as string
    const sent = [
      one.send(s1.id, s1.members[0] as string, 'slot'),
      one.send(s2.id, s2.members[0] as string, 'slot'),
      two.send(s3.id, s3.members[0] as string, 'slot'),
      two.send(s4.id, s4.members[0] as string, 'slot'),
    ]
    for (let i = 0; i < 3; i++) {
      sent.push(one.send(a.id, ua, `one a${i}`), one.send(b.id, ub, `one b${i}`))
      sent.push(two.send(b.id, ub, `two b${i}`), two.send(a.id, ua, `two a${i}`))
    }
    await lock.release()
    await Promise.all(sent)
    const real = (batches: string[][]) => batches.filter((batch) => batch[0] !== 'slot')
    expect(real(one.batches())).toEqual([['one a0', 'one b0', 'one a1', 'one b1', 'one a2', 'one b2']])
    expect(real(two.batches())).toEqual([['two b0', 'two a0', 'two b1', 'two a1', 'two b2', 'two a2']])
    expect((await seqsOf(a.id)).map(([seq]) => seq)).toEqual([1, 2, 3, 4, 5, 6])
    expect((await seqsOf(b.id)).map(([seq]) => seq)).toEqual([1, 2, 3, 4, 5, 6])
  })
})
