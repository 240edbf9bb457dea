import { sql } from 'drizzle-orm'
import { newId } from '../lib/ids.js'
import type { Db } from '../store/db.js'
import { isDatabaseUnavailable } from '../store/pg-errors.js'
import { conversationMembers, conversations, type MessageRow, messages } from '../store/schema.js'
import { AppError, NotFoundError, UnavailableError } from './errors.js'

export interface SendRequest {
  senderId: string
  conversationId: string
  /** Already validated and trimmed. */
  content: string
  clientMsgId: string | null
}

export interface SendResult {
  message: MessageRow
  /** False when `clientMsgId` matched an earlier message, which is returned instead. */
  created: boolean
}

interface Pending {
  req: SendRequest
  resolve: (r: SendResult) => void
  reject: (e: unknown) => void
}

type Outcome = SendResult | AppError

/**
 * Group commit for messages. Sends queue up while one transaction is in flight; the next
 * transaction stores the whole queue (up to `maxBatch`) across conversations at once. A caller's
 * promise settles only after the transaction holding its message has committed, so an ack is
 * never ahead of the database.
 *
 * Per conversation, `seq` is assigned under the conversation row's lock (`FOR UPDATE`, taken
 * in id order so batches on several instances cannot deadlock) and written with the messages,
 * so it is gapless and strictly increasing whatever the batch size or instance count.
 */
export class MessageWriter {
  private queue: Pending[] = []
  private running = false
  private idle: (() => void)[] = []

  constructor(
    private readonly db: Db,
    private readonly maxBatch: number,
    /** Called after each commit with the newly created messages in commit (seq) order. */
    private readonly onCommitted: (created: MessageRow[]) => void,
  ) {}

  append(req: SendRequest): Promise<SendResult> {
    return new Promise((resolve, reject) => {
      this.queue.push({ req, resolve, reject })
      if (!this.running) void this.drain()
    })
  }

  /** Resolves once every queued send has settled (graceful shutdown). */
  async flushed(): Promise<void> {
    if (!this.running && this.queue.length === 0) return
    await new Promise<void>((resolve) => this.idle.push(resolve))
  }

  private async drain(): Promise<void> {
    this.running = true
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch)
        await this.commitBatch(batch)
      }
    } finally {
      this.running = false
      for (const done of this.idle.splice(0)) done()
    }
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    let outcomes: Outcome[]
    try {
      outcomes = await this.db.transaction((tx) =>
        storeBatch(
          tx,
          batch.map((p) => p.req),
        ),
      )
    } catch (err) {
      if (batch.length > 1 && !isDatabaseUnavailable(err)) {
        // One bad request (or a concurrent duplicate on another instance) must not fail its
        // neighbours: store them one by one.
        for (const p of batch) await this.commitBatch([p])
        return
      }
      const error = isDatabaseUnavailable(err)
        ? new UnavailableError('the database is unavailable; message not stored')
        : err
      for (const p of batch) p.reject(error)
      return
    }
    const created = outcomes
      .filter((o): o is SendResult => !(o instanceof AppError) && o.created)
      .map((o) => o.message)
    if (created.length > 0) this.onCommitted(created)
    batch.forEach((p, i) => {
      const o = outcomes[i]
      if (o instanceof AppError) p.reject(o)
      else if (o) p.resolve(o)
    })
  }
}

/**
 * The batch's statements are raw SQL whose rows travel as one JSON parameter: the text is the
 * same whatever the batch size (prepared once), and building it costs nothing per row. Building
 * the same statements with the query builder, one bound parameter per value, took about a fifth
 * of the server's CPU at 3,000 messages/s (docs/performance.md).
 */
async function storeBatch(tx: Db, reqs: SendRequest[]): Promise<Outcome[]> {
  const convIds = [...new Set(reqs.map((r) => r.conversationId))].sort()
  const pairs = new Map<string, { c: string; u: string }>()
  for (const r of reqs) pairs.set(`${r.conversationId}/${r.senderId}`, { c: r.conversationId, u: r.senderId })
  const locked = rowsOf(
    await tx.execute(sql`
      select id, last_seq from ${conversations}
      where id in (select value::uuid from json_array_elements_text(${JSON.stringify(convIds)}::json))
      order by id
      for update`),
  )
  const lastSeq = new Map(locked.map((c) => [c.id as string, Number(c.last_seq)]))
  const memberRows = rowsOf(
    await tx.execute(sql`
      select m.conversation_id as c, m.user_id as u
      from ${conversationMembers} m
      join json_to_recordset(${JSON.stringify([...pairs.values()])}::json) as x(c uuid, u uuid)
        on m.conversation_id = x.c and m.user_id = x.u`),
  )
  const members = new Set(memberRows.map((m) => `${m.c}/${m.u}`))
  const earlier = await findEarlier(tx, reqs)

  const outcomes: (Outcome | { pending: MessageRow } | { sameAs: string })[] = []
  const rows: MessageRow[] = []
  const now = new Date()
  const inBatch = new Map<string, MessageRow>()
  for (const req of reqs) {
    if (!members.has(`${req.conversationId}/${req.senderId}`) || !lastSeq.has(req.conversationId)) {
      outcomes.push(new NotFoundError('conversation'))
      continue
    }
    const key = idempotencyKey(req)
    const before = key === undefined ? undefined : (earlier.get(key) ?? inBatch.get(key))
    if (before) {
      outcomes.push({ message: before, created: false })
      continue
    }
    const seq = (lastSeq.get(req.conversationId) ?? 0) + 1
    lastSeq.set(req.conversationId, seq)
    const row: MessageRow = {
      id: newId(),
      conversationId: req.conversationId,
      seq,
      senderId: req.senderId,
      content: req.content,
      clientMsgId: req.clientMsgId,
      createdAt: now,
      editedAt: null,
      deletedAt: null,
    }
    if (key !== undefined) inBatch.set(key, row)
    rows.push(row)
    outcomes.push({ message: row, created: true })
  }
  if (rows.length > 0) {
    const touched = [...new Set(rows.map((r) => r.conversationId))].map((id) => ({
      id,
      seq: lastSeq.get(id),
    }))
    const values = rows.map((r) => ({
      id: r.id,
      c: r.conversationId,
      seq: r.seq,
      s: r.senderId,
      t: r.content,
      k: r.clientMsgId,
    }))
    await tx.execute(sql`
      with inserted as (
        insert into ${messages} (id, conversation_id, seq, sender_id, content, client_msg_id, created_at)
        select x.id, x.c, x.seq, x.s, x.t, x.k, ${now.toISOString()}::timestamptz
        from json_to_recordset(${JSON.stringify(values)}::json)
          as x(id uuid, c uuid, seq bigint, s uuid, t text, k text)
      )
      update ${conversations} as c
      set last_seq = v.seq, last_activity_at = ${now.toISOString()}::timestamptz
      from json_to_recordset(${JSON.stringify(touched)}::json) as v(id uuid, seq bigint)
      where c.id = v.id`)
  }
  return outcomes as Outcome[]
}

/** `execute` gives an array of rows on postgres.js and `{ rows }` on PGlite. */
function rowsOf(result: unknown): Record<string, unknown>[] {
  return Array.isArray(result) ? result : ((result as { rows?: Record<string, unknown>[] }).rows ?? [])
}

const idempotencyKey = (r: {
  conversationId: string
  senderId: string | null
  clientMsgId: string | null
}) => (r.clientMsgId === null ? undefined : `${r.conversationId}/${r.senderId}/${r.clientMsgId}`)

const toDate = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(v as string))

/** Messages already stored under the batch's client_msg_ids, keyed like `idempotencyKey`. */
async function findEarlier(tx: Db, reqs: SendRequest[]): Promise<Map<string, MessageRow>> {
  const keys = reqs
    .filter((r) => r.clientMsgId !== null)
    .map((r) => ({ c: r.conversationId, s: r.senderId, k: r.clientMsgId }))
  if (keys.length === 0) return new Map()
  const found = rowsOf(
    await tx.execute(sql`
      select m.id, m.conversation_id, m.seq, m.sender_id, m.content, m.client_msg_id,
             m.created_at, m.edited_at, m.deleted_at
      from ${messages} m
      join json_to_recordset(${JSON.stringify(keys)}::json) as x(c uuid, s uuid, k text)
        on m.conversation_id = x.c and m.sender_id = x.s and m.client_msg_id = x.k
      where m.client_msg_id is not null`),
  ).map(
    (m): MessageRow => ({
      id: m.id as string,
      conversationId: m.conversation_id as string,
      seq: Number(m.seq),
      senderId: m.sender_id as string | null,
      content: m.content as string,
      clientMsgId: m.client_msg_id as string | null,
      createdAt: toDate(m.created_at) as Date,
      editedAt: toDate(m.edited_at),
      deletedAt: toDate(m.deleted_at),
    }),
  )
  return new Map(found.map((m) => [idempotencyKey(m) as string, m]))
}
