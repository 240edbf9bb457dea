import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { NotFoundError, UnavailableError } from '../../src/errors.js'
import { newId } from '../../src/lib/ids.js'
import { MessageWriter } from '../../src/services/message-writer.js'
import { type Database, openDatabase } from '../../src/store/db.js'
import { conversations, messages } from '../../src/store/schema.js'
import { DRIVERS, openTestDatabase } from '../helpers/database.js'
import { closedPort, countTransactions, seedConversation, startWriter } from '../helpers/writer.js'

/** PostgreSQL's code for a batch that cannot be stored (a NUL character cannot be in text). */
const pgCode = (err: unknown): unknown => {
  for (let e = err; e && typeof e === 'object'; e = (e as { cause?: unknown }).cause) {
    const code = (e as { code?: unknown }).code
    if (typeof code === 'string') return code
  }
  return undefined
}

describe.each(DRIVERS)('MessageWriter on %s', (driver) => {
  let database: Database
  // As in production: on PostgreSQL a plain batch's COMMIT is sent behind its insert.
  const pipelined = driver === 'postgres'
  beforeAll(async () => {
    database = await openTestDatabase(driver)
  })
  afterAll(async () => database?.close())

  const stored = (conversationId: string) =>
    database.db
      .select()
      .from(messages)
      .where(eq(messages.conversationId, conversationId))
      .orderBy(asc(messages.seq))

  const conversation = async (id: string) =>
    (await database.db.select().from(conversations).where(eq(conversations.id, id)))[0]

  it('gives each conversation gapless seqs in the order of the sends, and reports commits in seq order', async () => {
    const a = await seedConversation(database.db)
    const b = await seedConversation(database.db)
    const { send, commits, versions } = startWriter(database.db, 4, pipelined)
    const sends = Array.from({ length: 12 }, (_, i) => {
      const c = i % 3 === 0 ? b : a
      return send(c.id, c.members[i % 2] as string, `m${i}`)
    })
    const results = await Promise.all(sends)
    const inA = results.filter((r) => r.message.conversation_id === a.id)
    const inB = results.filter((r) => r.message.conversation_id === b.id)
    expect(inA.map((r) => r.message.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8])
    expect(inB.map((r) => r.message.seq)).toEqual([1, 2, 3, 4])
    expect(results.every((r) => r.created)).toBe(true)
    expect(results[1]?.message).toMatchObject({
      conversation_id: a.id,
      sender_id: a.members[1],
      content: 'm1',
      client_msg_id: null,
      edited_at: null,
      deleted_at: null,
    })
    // Stored exactly as acknowledged.
    const rowsA = await stored(a.id)
    expect(rowsA.map((m) => [m.id, m.seq, m.content])).toEqual(
      inA.map((r) => [r.message.id, r.message.seq, r.message.content]),
    )
    expect(rowsA[0]?.createdAt.toISOString()).toBe(inA[0]?.message.created_at)
    // Each commit reports its new rows once, in seq order per conversation, at most 4 at a time.
    const reported = commits.flat()
    expect(reported.map((m) => m.id).sort()).toEqual(results.map((r) => r.message.id).sort())
    for (const rows of commits) {
      expect(rows.length).toBeLessThanOrEqual(4)
      for (const c of [a.id, b.id]) {
        const seqs = rows.filter((m) => m.conversation_id === c).map((m) => m.seq)
        expect(seqs).toEqual([...seqs].sort((x, y) => x - y))
      }
    }
    expect(versions.every((v) => [...v.values()].every((n) => n === 0))).toBe(true)
    // The conversation row follows: last seq and last activity.
    const rowA = await conversation(a.id)
    expect(rowA?.lastSeq).toBe(8)
    expect(rowA?.lastActivityAt.toISOString()).toBe(inA.at(-1)?.message.created_at)
  })

  it("reports each locked conversation's membership version with its commit", async () => {
    const c = await seedConversation(database.db)
    await database.db.update(conversations).set({ membersVersion: 7 }).where(eq(conversations.id, c.id))
    const { send, versions } = startWriter(database.db, 100, pipelined)
    await send(c.id, c.members[0] as string, 'hello')
    expect(versions).toHaveLength(1)
    expect(versions[0]?.get(c.id)).toBe(7)
  })

  /** Two sends that occupy both transaction slots, so that what is appended next forms one batch. */
  async function occupySlots(send: ReturnType<typeof startWriter>['send']) {
    const s1 = await seedConversation(database.db, 1)
    const s2 = await seedConversation(database.db, 1)
    return [send(s1.id, s1.members[0] as string, 'slot 1'), send(s2.id, s2.members[0] as string, 'slot 2')]
  }

  it('stores one message for a client_msg_id sent twice in one batch; other senders and conversations are apart', async () => {
    const c = await seedConversation(database.db)
    const d = await seedConversation(database.db)
    const [ann, bob] = c.members as [string, string]
    const { send, batches, commits } = startWriter(database.db, 100, pipelined)
    const slots = await occupySlots(send)
    const first = send(c.id, ann, 'first', 'k1')
    const again = send(c.id, ann, 'again', 'k1')
    const otherSender = send(c.id, bob, 'bob', 'k1')
    const otherConversation = send(d.id, d.members[0] as string, 'elsewhere', 'k1')
    const [r1, r2, r3, r4] = await Promise.all([first, again, otherSender, otherConversation, ...slots])
    expect(batches()).toContainEqual(['first', 'bob', 'elsewhere'])
    expect(r1).toMatchObject({ created: true, message: { seq: 1, content: 'first', client_msg_id: 'k1' } })
    expect(r2?.created).toBe(false)
    expect(r2?.message).toEqual(r1?.message)
    expect(r3).toMatchObject({ created: true, message: { seq: 2, sender_id: bob } })
    expect(r4).toMatchObject({ created: true, message: { seq: 1, conversation_id: d.id } })
    expect((await stored(c.id)).map((m) => m.content)).toEqual(['first', 'bob'])
    expect(commits.flat().filter((m) => m.content === 'again')).toEqual([])
  })

  it('answers a client_msg_id sent again later with the stored message as it is now, committing nothing', async () => {
    const c = await seedConversation(database.db)
    const ann = c.members[0] as string
    const { send, commits } = startWriter(database.db, 100, pipelined)
    const original = await send(c.id, ann, 'original', 'k2')
    const retry = await send(c.id, ann, 'retry', 'k2')
    expect(retry.created).toBe(false)
    expect(retry.message).toEqual(original.message)
    expect(commits).toHaveLength(1)

    const editedAt = new Date('2031-02-03T04:05:06.789Z')
    await database.db
      .update(messages)
      .set({ content: 'edited', editedAt })
      .where(eq(messages.id, original.message.id))
    const afterEdit = await send(c.id, ann, 'retry again', 'k2')
    expect(afterEdit).toEqual({
      created: false,
      message: { ...original.message, content: 'edited', edited_at: editedAt.toISOString() },
    })

    const deletedAt = new Date('2031-02-03T04:05:07.000Z')
    await database.db
      .update(messages)
      .set({ content: '', deletedAt })
      .where(eq(messages.id, original.message.id))
    const afterDelete = await send(c.id, ann, 'and again', 'k2')
    expect(afterDelete.message).toMatchObject({
      content: '',
      edited_at: editedAt.toISOString(),
      deleted_at: deletedAt.toISOString(),
    })
    expect(afterDelete.message.created_at).toEqual(original.message.created_at)
    expect(commits).toHaveLength(1)
    expect(await stored(c.id)).toHaveLength(1)
  })

  it('refuses a non-member and an unknown conversation inside a batch that stores its other sends', async () => {
    const c = await seedConversation(database.db)
    const outsider = (await seedConversation(database.db, 1)).members[0] as string
    const member = c.members[0] as string
    const { send, batches } = startWriter(database.db, 100, pipelined)
    const slots = await occupySlots(send)
    const good1 = send(c.id, member, 'good 1', 'g1')
    const intruder = send(c.id, outsider, 'intruder', 'g1')
    const nowhere = send(newId(), member, 'nowhere')
    const good2 = send(c.id, member, 'good 2')
    await expect(intruder).rejects.toBeInstanceOf(NotFoundError)
    await expect(nowhere).rejects.toThrow('conversation not found')
    const [r1, r2] = await Promise.all([good1, good2, ...slots])
    expect([r1?.message.seq, r2?.message.seq]).toEqual([1, 2])
    expect(batches()).toContainEqual(['good 1', 'good 2'])
    expect((await stored(c.id)).map((m) => m.content)).toEqual(['good 1', 'good 2'])
  })

  it('retries a failed batch one send at a time, so that only the bad send fails', async () => {
    const c = await seedConversation(database.db)
    const d = await seedConversation(database.db)
    const { send, batches } = startWriter(database.db, 100, pipelined)
    const slots = await occupySlots(send)
    const good1 = send(c.id, c.members[0] as string, 'good 1')
    const bad = send(c.id, c.members[1] as string, 'nul \u0000 inside')
    const good2 = send(d.id, d.members[0] as string, 'good 2')
    const good3 = send(c.id, c.members[0] as string, 'good 3')
    const error = await bad.then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(error).not.toBeInstanceOf(NotFoundError)
    expect(pgCode(error)).toBe('22P05')
    const [r1, r2, r3] = await Promise.all([good1, good2, good3, ...slots])
    expect([r1?.message.seq, r2?.message.seq, r3?.message.seq]).toEqual([1, 1, 2])
    const retried = batches().filter((b) => !b[0]?.startsWith('slot'))
    expect(retried).toEqual([['good 1'], ['good 2'], ['good 3']])
    expect((await stored(c.id)).map((m) => m.content)).toEqual(['good 1', 'good 3'])
  })

  it('flushed() resolves at once when nothing is queued, and after every queued send settled', async () => {
    const c = await seedConversation(database.db)
    const { writer, send } = startWriter(database.db, 100, pipelined)
    await writer.flushed()
    const settled: string[] = []
    for (const label of ['a', 'b', 'c'])
      void send(c.id, c.members[0] as string, label).then(() => settled.push(label))
    void send(newId(), c.members[0] as string, 'refused').catch(() => settled.push('refused'))
    await writer.flushed()
    expect(settled.sort()).toEqual(['a', 'b', 'c', 'refused'])
  })
})

describe('MessageWriter with the database down', () => {
  it('fails every send of a batch with UnavailableError, without retrying them one by one', async () => {
    const down = await openDatabase({
      databaseUrl: `postgres://postgres@127.0.0.1:${await closedPort()}/none`,
    })
    try {
      const { db, stats } = countTransactions(down.db)
      const onCommitted: unknown[] = []
      const writer = new MessageWriter(db, { maxBatch: 100 }, (rows) => onCommitted.push(rows))
      const conversationId = newId()
      const sends = ['1', '2', '3', '4', '5'].map((content) =>
        writer.append({ conversationId, senderId: newId(), content, clientMsgId: null }),
      )
      const outcomes = await Promise.allSettled(sends)
      for (const o of outcomes) {
        expect(o.status).toBe('rejected')
        const reason = (o as PromiseRejectedResult).reason
        expect(reason).toBeInstanceOf(UnavailableError)
        expect(reason.message).toBe('the database is unavailable; message not stored')
      }
      // The first send alone, then the four queued behind it as one batch: nothing else was tried.
      expect(stats.started).toBe(2)
      expect(onCommitted).toEqual([])
      await writer.flushed()
    } finally {
      await down.close()
    }
  })
})
