import { and, asc, inArray, type SQL, sql } from 'drizzle-orm'
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

async function storeBatch(tx: Db, reqs: SendRequest[]): Promise<Outcome[]> {
  const convIds = [...new Set(reqs.map((r) => r.conversationId))].sort()
  const senderIds = [...new Set(reqs.map((r) => r.senderId))]
  const locked = await tx
    .select({ id: conversations.id, lastSeq: conversations.lastSeq })
    .from(conversations)
    .where(inArray(conversations.id, convIds))
    .orderBy(asc(conversations.id))
    .for('update')
  const lastSeq = new Map(locked.map((c) => [c.id, c.lastSeq]))
  const memberRows = await tx
    .select({ c: conversationMembers.conversationId, u: conversationMembers.userId })
    .from(conversationMembers)
    .where(
      and(
        inArray(conversationMembers.conversationId, convIds),
        inArray(conversationMembers.userId, senderIds),
      ),
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
    await tx.insert(messages).values(rows)
    const touched = [...new Set(rows.map((r) => r.conversationId))]
    const values: SQL[] = touched.map((id) => sql`(${id}::uuid, ${lastSeq.get(id)}::bigint)`)
    await tx.execute(sql`
      update ${conversations} as c
      set last_seq = v.seq, last_activity_at = ${now.toISOString()}::timestamptz
      from (values ${sql.join(values, sql`, `)}) as v(id, seq)
      where c.id = v.id`)
  }
  return outcomes as Outcome[]
}

const idempotencyKey = (r: {
  conversationId: string
  senderId: string | null
  clientMsgId: string | null
}) => (r.clientMsgId === null ? undefined : `${r.conversationId}/${r.senderId}/${r.clientMsgId}`)

/** Messages already stored under the batch's client_msg_ids, keyed like `idempotencyKey`. */
async function findEarlier(tx: Db, reqs: SendRequest[]): Promise<Map<string, MessageRow>> {
  const withKey = reqs.filter((r) => r.clientMsgId !== null)
  if (withKey.length === 0) return new Map()
  const found = await tx
    .select()
    .from(messages)
    .where(
      and(
        inArray(messages.conversationId, [...new Set(withKey.map((r) => r.conversationId))]),
        inArray(messages.clientMsgId, [...new Set(withKey.map((r) => r.clientMsgId as string))]),
      ),
    )
  return new Map(found.map((m) => [idempotencyKey(m) as string, m]))
}
