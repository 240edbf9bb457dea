import { and, eq, isNotNull, sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { RetentionService } from '../../src/services/retention.js'
import {
  attachments,
  messageMentions,
  messagePins,
  messageReactions,
  messageThreads,
} from '../../src/store/schema.js'
import { objectStorage } from '../../src/wiring.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { sendFile } from '../helpers/attachments.js'
import { contentOf, DAY, retentionJob } from '../helpers/retention.js'
import {
  conversationSocketUrl,
  directChat,
  type Frame,
  groupChat,
  history,
  restSend,
  type StoredMessage,
  TestSocket,
  userSocketUrl,
} from '../helpers/ws-client.js'

/**
 * Retention (issue 15): the per-conversation setting and the job that tombstones expired messages,
 * with a clock the test moves (days pass in no time), on a table with rows, while sends go on.
 */

describe.each(DRIVERS)('retention on %s', (driver) => {
  let t: TestApp
  /** What the job believes the time is. */
  let jobNow = new Date()
  let owner: TestUser
  let admin: TestUser
  let member: TestUser
  let stranger: TestUser
  let group: string

  beforeAll(async () => {
    t = await startTestApp({ driver, env: { RETENTION_BATCH_SIZE: '4' }, now: () => jobNow })
    await t.listen()
    owner = await registerUser(t.app, 'Owner')
    admin = await registerUser(t.app, 'Admin')
    member = await registerUser(t.app, 'Member')
    stranger = await registerUser(t.app, 'Stranger')
    group = await groupChat(t.app, owner, [admin, member])
    await call(owner, 'PATCH', `/conversations/${group}/members/${admin.id}`, { role: 'admin' })
  }, 60_000)
  afterAll(async () => {
    await t?.close()
  })

  const call = (user: TestUser, method: 'GET' | 'PUT' | 'PATCH' | 'POST', url: string, payload?: object) =>
    t.app.inject({ method, url: `/api/v1/chat${url}`, headers: user.auth, ...(payload ? { payload } : {}) })
  const setRetention = (user: TestUser, conv: string, days: unknown) =>
    call(user, 'PUT', `/conversations/${conv}/retention`, { days })

  it('owners and admins set it, members see it, plain members get 403 and strangers 404', async () => {
    const conv = await groupChat(t.app, owner, [admin, member])
    await call(owner, 'PATCH', `/conversations/${conv}/members/${admin.id}`, { role: 'admin' })
    expect((await call(member, 'GET', `/conversations/${conv}`)).json().retention).toEqual({
      days: null,
      source: 'none',
    })
    const set = await setRetention(admin, conv, 30)
    expect(set.statusCode, set.body).toBe(200)
    expect(set.json().retention).toEqual({ days: 30, source: 'conversation' })
    expect((await call(member, 'GET', `/conversations/${conv}`)).json().retention.days).toBe(30)
    expect((await setRetention(member, conv, 1)).statusCode).toBe(403)
    expect((await setRetention(stranger, conv, 1)).statusCode).toBe(404)
    for (const bad of [0, 36501, 1.5, '30'])
      expect((await setRetention(owner, conv, bad)).statusCode).toBe(422)
    expect((await call(member, 'GET', `/conversations/${conv}`)).json().retention.days).toBe(30)
    expect((await setRetention(owner, conv, null)).json().retention).toEqual({ days: null, source: 'none' })
    // Either member of a direct conversation (both are plain members there).
    const dm = await directChat(t.app, member, stranger)
    expect((await setRetention(stranger, dm, 7)).json().retention.days).toBe(7)
  })

  it('tombstones expired messages with their extras and files while sends go on; seq stays gapless', async () => {
    // Existing rows: plain messages, a reply (thread), a mention, a reaction, a pin and a file.
    const old: StoredMessage[] = []
    for (let i = 0; i < 8; i++) old.push(await restSend(t.app, member, group, `old secret ${i} ${driver}`))
    const root = old[0] as StoredMessage
    const reply = await call(member, 'POST', `/conversations/${group}/messages`, {
      content: `old reply ${driver}`,
      reply_to: root.id,
      mentions: [owner.id],
    })
    expect(reply.statusCode, reply.body).toBe(201)
    old.push(reply.json())
    expect(
      (await call(owner, 'PUT', `/messages/${root.id}/reactions/${encodeURIComponent('👍')}`)).statusCode,
    ).toBe(200)
    expect((await call(owner, 'PUT', `/messages/${root.id}/pin`)).statusCode).toBe(200)
    const fileId = await sendFile(t, member, group)
    const [file] = await t.database.db.select().from(attachments).where(eq(attachments.id, fileId))
    old.push((await history(t.app, member, group)).at(-1) as StoredMessage)
    const oldSeqs = old.map((m) => m.seq)

    // The clock: messages created before `cutoff` are 30 days old when the job runs.
    const cutoff = new Date(Math.max(...old.map((m) => Date.parse(String(m.created_at)))) + 1)
    while (Date.now() <= cutoff.getTime()) await new Promise((r) => setImmediate(r))
    jobNow = new Date(cutoff.getTime() + 30 * DAY)
    expect((await setRetention(owner, group, 30)).statusCode).toBe(200)

    const socket = await TestSocket.open(conversationSocketUrl(t.url, group), { token: admin.token })
    await socket.waitFor((f) => f.type === 'ready')
    const expiredBefore = await counter(t)

    // Sends go on while the job runs (batches of 4, so it commits several times in between).
    const sent: StoredMessage[] = []
    const sending = (async () => {
      for (let i = 0; i < 30; i++) sent.push(await restSend(t.app, owner, group, `new ${i}`, `new-${i}`))
    })()
    const parallel = Promise.all(
      Array.from({ length: 10 }, (_, i) => restSend(t.app, admin, group, `burst ${i}`, `burst-${i}`)),
    )
    const run = await t.services.retention.run()
    sent.push(...(await parallel))
    await sending
    expect(run).toMatchObject({ expired: old.length, busy: false })
    expect(run.batches).toBeGreaterThan(2)
    expect(await counter(t)).toBe(expiredBefore + old.length)

    // Every message is there once, in seq order, gapless; the old ones are tombstones, the new intact.
    const items = await history(t.app, member, group)
    expect(items.map((m) => m.seq)).toEqual(range(1, items.length))
    for (const m of sent) {
      const stored = items.find((i) => i.id === m.id)
      expect(stored).toMatchObject({ seq: m.seq, content: m.content, deleted_at: null })
    }
    for (const seq of oldSeqs) {
      const m = items.find((i) => i.seq === seq) as StoredMessage
      expect(m).toMatchObject({
        content: '',
        attachments: [],
        deleted_at: jobNow.toISOString(),
        reactions: [],
        mentions: [],
        mentions_all: false,
        pinned_at: null,
        thread: null,
        sender_id: member.id,
      })
      expect(m.created_at).toBe(old.find((o) => o.seq === seq)?.created_at)
    }
    // Resume (what a socket reads from the store) sees the same.
    const resumed = await t.services.messages.after(group, 0, 1000, member.id)
    expect(resumed.map((m) => [m.seq, m.content])).toEqual(items.map((m) => [m.seq, m.content]))

    // Nothing of them is left: extras, search, the file and its row.
    const db = t.database.db
    const ids = old.map((m) => m.id)
    for (const table of [messageReactions, messageMentions, messagePins, messageThreads]) {
      const rows = await db.select().from(table).where(eq(table.conversationId, group))
      expect(rows.filter((r) => ids.includes(r.messageId))).toEqual([])
    }
    expect(await db.select().from(attachments).where(eq(attachments.id, fileId))).toEqual([])
    const storage = objectStorage(t.services.config)
    expect(await storage.size((file as { storageKey: string }).storageKey)).toBeUndefined()
    const found = await call(member, 'GET', `/search?q=${encodeURIComponent(`secret ${driver}`)}`)
    expect(found.json().items).toEqual([])

    // Sockets hear of it once per conversation and batch, never once per message.
    const frames = await socket.collect('messages.expired', 1)
    await eventuallyAll(socket, oldSeqs)
    const expiredFrames = socket.ofType('messages.expired')
    expect(expiredFrames.length).toBeLessThanOrEqual(run.batches)
    expect(frames[0]?.expired_at).toBe(jobNow.toISOString())
    expect(socket.ofType('message.deleted')).toEqual([])
    socket.close()

    // A second run finds nothing: the expired rows left the index the job reads.
    expect(await t.services.retention.run()).toMatchObject({ expired: 0, batches: 1 })
  })

  it('follows the server default unless a conversation sets its own; off when neither is set', async () => {
    const byDefault = await groupChat(t.app, owner, [member])
    const ownLonger = await groupChat(t.app, owner, [member])
    expect((await setRetention(owner, ownLonger, 365)).statusCode).toBe(200)
    const a = await restSend(t.app, owner, byDefault, 'by default')
    const b = await restSend(t.app, owner, ownLonger, 'kept a year')
    const later = Date.parse(String(b.created_at)) + 40 * DAY
    const off = retentionJob(t, null, () => new Date(later))
    await off.run()
    expect(await contentOf(t, a.id)).toBe('by default')
    const on = retentionJob(t, 30, () => new Date(later))
    await on.run()
    expect(await contentOf(t, a.id)).toBe('')
    expect(await contentOf(t, b.id)).toBe('kept a year')
    // Shown in the view: the server default where the conversation has none.
    const view = await t.services.conversations.get(owner.id, byDefault)
    expect(view.retention).toEqual({ days: null, source: 'none' })
  })

  it('a run stopped after some batches loses nothing: the next one finishes', async () => {
    const conv = await groupChat(t.app, owner, [member])
    const sent: StoredMessage[] = []
    for (let i = 0; i < 23; i++) sent.push(await restSend(t.app, owner, conv, `to expire ${i}`))
    expect((await setRetention(owner, conv, 1)).statusCode).toBe(200)
    const now = () => new Date(Date.parse(String(sent.at(-1)?.created_at)) + 2 * DAY)
    const stop = new AbortController()
    let batches = 0
    const first = retentionJob(t, null, now, 5, () => {
      if (++batches === 2) stop.abort()
    })
    expect(await first.run(stop.signal)).toMatchObject({ expired: 10, batches: 2 })
    const left = (await history(t.app, owner, conv)).filter((m) => m.content !== '')
    expect(left).toHaveLength(13)
    // "Restart": another instance of the job, from nothing but the database.
    const second = retentionJob(t, null, now, 5)
    expect(await second.run()).toMatchObject({ expired: 13, busy: false })
    const items = await history(t.app, owner, conv)
    expect(items.map((m) => [m.seq, m.content])).toEqual(sent.map((m) => [m.seq, '']))
  })

  it('runs on a timer and reports each run; stop waits for the run in flight', async () => {
    const conv = await groupChat(t.app, owner, [member])
    const m = await restSend(t.app, owner, conv, 'on a timer')
    expect((await setRetention(owner, conv, 1)).statusCode).toBe(200)
    const job = retentionJob(t, null, () => new Date(Date.now() + 2 * DAY))
    const reported = new Promise<unknown>((resolve) => {
      const timer = job.every(1, (outcome) => {
        void timer.stop().then(() => resolve(outcome))
      })
    })
    expect(await reported).toMatchObject({ busy: false })
    expect(await contentOf(t, m.id)).toBe('')
  })

  it('files whose deletion failed after commit stay marked and the attachment sweep removes them', async () => {
    const conv = await groupChat(t.app, owner, [member])
    const fileId = await sendFile(t, owner, conv)
    const [file] = await t.database.db.select().from(attachments).where(eq(attachments.id, fileId))
    expect((await setRetention(owner, conv, 1)).statusCode).toBe(200)
    const failing = new RetentionService(
      t.database.db,
      t.services.broker,
      t.services.conversations,
      { defaultDays: null, batchSize: 100 },
      async () => {
        throw new Error('object storage is down')
      },
      () => new Date(Date.now() + 2 * DAY),
    )
    expect((await failing.run()).expired).toBe(1)
    const marked = await t.database.db
      .select()
      .from(attachments)
      .where(and(eq(attachments.id, fileId), isNotNull(attachments.deletedAt)))
    expect(marked).toHaveLength(1)
    await t.services.attachments.sweep()
    expect(await t.database.db.select().from(attachments).where(eq(attachments.id, fileId))).toEqual([])
    const storage = objectStorage(t.services.config)
    expect(await storage.size((file as { storageKey: string }).storageKey)).toBeUndefined()
  })

  it('runs one batch at a time: while another holds the lock, a run does nothing', async () => {
    const conv = await groupChat(t.app, owner, [member])
    const m = await restSend(t.app, owner, conv, 'held back')
    expect((await setRetention(owner, conv, 1)).statusCode).toBe(200)
    const job = retentionJob(t, null, () => new Date(Date.now() + 2 * DAY))
    let release: () => void = () => undefined
    const held = new Promise<void>((r) => {
      release = r
    })
    let locked: () => void = () => undefined
    const isLocked = new Promise<void>((r) => {
      locked = r
    })
    // Another instance in the middle of a batch (on PGlite, a transaction of the one connection).
    const other = t.database.db.transaction(async (tx) => {
      await tx.execute(sql`select pg_advisory_xact_lock(72410014)`)
      locked()
      await held
    })
    await isLocked
    if (driver === 'postgres') {
      expect(await job.run()).toEqual({ expired: 0, batches: 0, busy: true })
      expect(await contentOf(t, m.id)).toBe('held back')
      release()
    } else {
      // One connection: the run queues behind the other transaction and goes once it is over.
      const run = job.run()
      release()
      expect((await run).expired).toBeGreaterThanOrEqual(1)
    }
    await other
    await job.run()
    expect(await contentOf(t, m.id)).toBe('')
  })

  it('a client offline during the expiry learns of it on resume: the tombstones come as changes', async () => {
    const conv = await groupChat(t.app, owner, [member])
    const old: StoredMessage[] = []
    for (let i = 0; i < 3; i++) old.push(await restSend(t.app, owner, conv, `gone ${i}`))
    // A change the member already holds: the first message's pin (change 1).
    expect((await call(owner, 'PUT', `/messages/${(old[0] as StoredMessage).id}/pin`)).statusCode).toBe(200)
    const cutoff = Date.parse(String(old.at(-1)?.created_at)) + 1
    while (Date.now() <= cutoff) await new Promise((r) => setImmediate(r))
    for (let i = 0; i < 2; i++) await restSend(t.app, owner, conv, `kept ${i}`)
    const held = (await call(member, 'GET', `/conversations/${conv}`)).json()
    expect(held).toMatchObject({ change_seq: 1, last_message: { seq: 5 } })
    expect((await setRetention(owner, conv, 1)).statusCode).toBe(200)

    // The member is away; a socket of the owner's stays connected through the run.
    const live = await TestSocket.open(userSocketUrl(t.url), { token: owner.token })
    await live.waitFor((f) => f.type === 'ready')
    const expiredAt = new Date(cutoff + DAY)
    // Batches of 2: the three messages expire in two transactions.
    const run = await retentionJob(t, null, () => expiredAt, 2).run()
    expect(run.expired).toBeGreaterThanOrEqual(3)
    await eventuallyAll(live, [1, 2, 3], conv)
    // Live sockets hear of it through `messages.expired` alone, not a frame per message.
    const perMessage = ['message.changed', 'message.updated', 'message.deleted', 'message.unpinned']
    expect(live.frames.filter((f) => perMessage.includes(f.type))).toEqual([])
    live.close()

    const back = await TestSocket.open(`${userSocketUrl(t.url)}?resume=true`, { token: member.token })
    await back.waitFor((f) => f.type === 'ready')
    back.send({ type: 'sync', cursors: { [conv]: 5 }, changes: { [conv]: 1 } })
    const synced = await back.waitFor((f) => f.type === 'changes.synced' && f.conversation_id === conv)
    const changed = back.frames
      .filter((f) => f.type === 'message.changed' && f.conversation_id === conv)
      .map((f) => f.message as StoredMessage)
    // Each expired message once, in change order (each batch numbered in seq order), as a tombstone.
    expect(changed.map((m) => [m.seq, m.change_seq])).toEqual([
      [1, 2],
      [2, 3],
      [3, 4],
    ])
    for (const m of changed)
      expect(m).toMatchObject({
        content: '',
        attachments: [],
        deleted_at: expiredAt.toISOString(),
        pinned_at: null,
      })
    expect(synced).toMatchObject({ change_seq: 4, complete: true })
    back.close()
    // The conversation's counter moved past them: a client starting from the list starts after them.
    expect((await call(member, 'GET', `/conversations/${conv}`)).json().change_seq).toBe(4)
  })
})

async function counter(t: TestApp): Promise<number> {
  const metric = await t.services.metrics.retentionExpired.get()
  return metric.values[0]?.value ?? 0
}

/** Waits until the socket's `messages.expired` frames (of `conversationId`, if given) have named every seq in `seqs`. */
async function eventuallyAll(socket: TestSocket, seqs: number[], conversationId?: string): Promise<void> {
  const ofConversation = (f: Frame) =>
    f.type === 'messages.expired' && (conversationId === undefined || f.conversation_id === conversationId)
  const heard = () => new Set(socket.frames.filter(ofConversation).flatMap((f) => f.seqs as number[]))
  for (const seq of seqs) {
    if (!heard().has(seq))
      await socket.waitFor((f) => ofConversation(f) && (f.seqs as number[]).includes(seq))
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i)
