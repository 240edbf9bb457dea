import { eq, sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Database, openDatabase, rowsOf } from '../../src/store/db.js'
import { messages } from '../../src/store/schema.js'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { contentOf, DAY, retentionJob } from '../helpers/retention.js'
import { groupChat, restSend, type StoredMessage } from '../helpers/ws-client.js'

/**
 * The retention job on two instances sharing one PostgreSQL: a transaction-level advisory lock
 * per batch lets one instance at a time work, and between them every expired message is
 * tombstoned exactly once.
 */
describe('retention with two instances on one PostgreSQL', () => {
  let t: TestApp
  let second: Database

  beforeAll(async () => {
    t = await startTestApp({ driver: 'postgres' })
    const url = (t.database as Database & { url?: string }).url as string
    second = await openDatabase({ databaseUrl: url, poolSize: 4 })
  })
  afterAll(async () => {
    await second?.close()
    await t?.close()
  })

  it('each batch runs on one instance; together they expire every message exactly once', async () => {
    const owner = await registerUser(t.app, 'Owner')
    const member = await registerUser(t.app, 'Member')
    const conv = await groupChat(t.app, owner, [member])
    const sent: StoredMessage[] = []
    for (let i = 0; i < 60; i++) sent.push(await restSend(t.app, owner, conv, `shared ${i}`))
    expect((await call(t, owner, 'PUT', `/conversations/${conv}/retention`, { days: 1 })).statusCode).toBe(
      200,
    )
    const base = Date.parse(String(sent.at(-1)?.created_at)) + 2 * DAY
    // Each instance stamps its own clock on what it expires, so the rows say who did what.
    const instances = [t.database.db, second.db].map((db, i) => {
      const job = retentionJob(t, null, () => new Date(base + i), 3, undefined, db)
      return { job, expired: 0, busy: 0 }
    })
    await Promise.all(
      instances.map(async (it) => {
        for (;;) {
          const run = await it.job.run()
          it.expired += run.expired
          if (!run.busy) return
          it.busy++
          await new Promise((r) => setImmediate(r))
        }
      }),
    )
    const rows = await t.database.db
      .select({ seq: messages.seq, content: messages.content, deletedAt: messages.deletedAt })
      .from(messages)
      .where(eq(messages.conversationId, conv))
    expect(rows.map((r) => r.content)).toEqual(rows.map(() => ''))
    expect(instances.reduce((n, it) => n + it.expired, 0)).toBe(60)
    instances.forEach((it, i) => {
      expect(rows.filter((r) => r.deletedAt?.getTime() === base + i)).toHaveLength(it.expired)
    })
  })

  it('while the other instance is inside a batch, a run stops at once and changes nothing', async () => {
    const owner = await registerUser(t.app, 'Owner')
    const conv = await groupChat(t.app, owner, [])
    const m = await restSend(t.app, owner, conv, 'not now')
    expect((await call(t, owner, 'PUT', `/conversations/${conv}/retention`, { days: 1 })).statusCode).toBe(
      200,
    )
    const later = () => new Date(Date.now() + 2 * DAY)
    const job = retentionJob(t, null, later)
    const other = retentionJob(t, null, later, 100, undefined, second.db)
    let inside: () => void = () => undefined
    const entered = new Promise<void>((r) => {
      inside = r
    })
    let leave: () => void = () => undefined
    const left = new Promise<void>((r) => {
      leave = r
    })
    const holder = second.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(72410014)`)
      inside()
      await left
    })
    await entered
    expect(await job.run()).toEqual({ expired: 0, batches: 0, busy: true })
    expect(await contentOf(t, m.id)).toBe('not now')
    leave()
    await holder
    expect((await other.run()).expired).toBeGreaterThanOrEqual(1)
    expect(await contentOf(t, m.id)).toBe('')
  })

  it('a reply committing under the conversation lock while its root expires: both commit, no deadlock', async () => {
    const owner = await registerUser(t.app, 'Owner')
    const conv = await groupChat(t.app, owner, [])
    const root = await restSend(t.app, owner, conv, 'root')
    const reply = await call(t, owner, 'POST', `/conversations/${conv}/messages`, {
      content: 'reply',
      reply_to: root.id,
    })
    expect(reply.statusCode, reply.body).toBe(201)
    expect((await call(t, owner, 'PUT', `/conversations/${conv}/retention`, { days: 1 })).statusCode).toBe(
      200,
    )
    // What the group commit does for a new reply to the root: the conversation's row first, then
    // the root's thread summary (store/message-batch.ts, message-batch-rich.ts).
    let locked: () => void = () => undefined
    const isLocked = new Promise<void>((r) => {
      locked = r
    })
    let batchWaits: () => void = () => undefined
    const waiting = new Promise<void>((r) => {
      batchWaits = r
    })
    const groupCommit = second.db.transaction(async (tx) => {
      await tx.execute(sql`select id from conversations where id = ${conv} for update`)
      locked()
      await waiting
      await tx.execute(sql`
        insert into message_threads (conversation_id, message_id, reply_count, last_reply_at, participants)
        values (${conv}, ${root.id}, 2, now(), array[${owner.id}]::uuid[])
        on conflict (conversation_id, message_id) do update set reply_count = message_threads.reply_count + 1`)
    })
    await isLocked
    const run = retentionJob(t, null, () => new Date(Date.now() + 2 * DAY)).run()
    // The batch has tombstoned the root and now waits for the conversation's row.
    await expect
      .poll(async () => {
        const rows = await t.database.db.execute(sql`
          select 1 from pg_stat_activity
          where wait_event_type = 'Lock' and query like '%message_changes%' and pid <> pg_backend_pid()`)
        return rowsOf(rows).length
      })
      .toBe(1)
    batchWaits()
    await groupCommit
    expect((await run).expired).toBeGreaterThanOrEqual(2)
    expect(await contentOf(t, root.id)).toBe('')
    // The summary the reply wrote went with its root, once the batch had the lock.
    const threads = await t.database.db.execute(
      sql`select 1 from message_threads where conversation_id = ${conv} and message_id = ${root.id}`,
    )
    expect(rowsOf(threads)).toHaveLength(0)
  })
})

const call = (t: TestApp, user: TestUser, method: 'PUT' | 'POST', url: string, payload: object) =>
  t.app.inject({ method, url: `/api/v1/chat${url}`, headers: user.auth, payload })
