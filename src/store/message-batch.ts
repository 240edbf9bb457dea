import { sql } from 'drizzle-orm'
import { type AppError, BlockedError, NotFoundError } from '../errors.js'
import { newId } from '../lib/ids.js'
import { type Claim, claimAttachments } from './attachments.js'
import { type Db, rowsOf, uuidArray } from './db.js'
import {
  checkRich,
  type RichLookups,
  richLookups,
  type ThreadChange,
  writeRich,
} from './message-batch-rich.js'
import type { ParentInfo } from './message-views.js'
import {
  type AttachmentMeta,
  conversationMembers,
  conversations,
  type MessageRow,
  messages,
} from './schema.js'

/** One message to store; content is already validated and trimmed. */
export interface SendRequest {
  senderId: string
  conversationId: string
  content: string
  clientMsgId: string | null
  /** Checked beforehand (`AttachmentService.prepare`); claimed in this transaction. */
  attachments?: AttachmentMeta[]
  /** A message of the same conversation this one replies to. */
  replyToId?: string | null
  /** Members mentioned (each must be a member). */
  mentions?: string[]
  /** `@all` (a group admin or owner only). */
  mentionsAll?: boolean
}

export interface StoredMessage {
  message: MessageRow
  /** The replied-to message (for the view's `reply_to`). */
  parent: ParentInfo | null
  /** False when `clientMsgId` matched an earlier message, which is returned instead. */
  created: boolean
}

export type Outcome = StoredMessage | AppError

/** One outcome per request, plus each locked conversation's membership version. */
export interface BatchOutcomes {
  outcomes: Outcome[]
  membersVersion: Map<string, number>
  /** Threads whose summary the batch's replies changed, as committed. */
  threads: ThreadChange[]
  /**
   * The insert left in flight (`pipelined`): it settles when the COMMIT sent behind it does.
   * Rejected, the COMMIT rolled the transaction back (PostgreSQL ends an aborted transaction's
   * COMMIT with ROLLBACK, without an error) and nothing of the batch is stored.
   */
  inserted?: Promise<void>
}

export interface BatchOptions {
  /**
   * The driver runs a transaction's statements in order on one connection (postgres.js): a plain
   * batch's insert is not awaited, so the COMMIT follows it in the same round trip.
   */
  pipelined?: boolean
}

/**
 * The batch's statements are raw SQL whose rows travel as one JSON parameter: the text is the
 * same whatever the batch size (prepared once), and building it costs nothing per row. Building
 * the same statements with the query builder, one bound parameter per value, took about a fifth
 * of the server's CPU at 3,000 messages/s (docs/performance.md). Lookups are written as
 * `= any(array(...))` and `lateral ... limit 1` so that each key is an index probe: a join against
 * a JSON function is otherwise planned as a hash join over a sequential scan of the whole table.
 */
export async function storeBatch(
  tx: Db,
  reqs: SendRequest[],
  options: BatchOptions = {},
): Promise<BatchOutcomes> {
  const convIds = [...new Set(reqs.map((r) => r.conversationId))].sort()
  const pairs = new Map<string, { c: string; u: string }>()
  for (const r of reqs) pairs.set(`${r.conversationId}/${r.senderId}`, { c: r.conversationId, u: r.senderId })
  // Issued together, in this order, so postgres.js pipelines them in one round trip (PGlite runs
  // them in turn): the reads run after the lock is granted and see what committed before it.
  // (Drizzle's queries start when awaited, so Promise.all starts them in array order.)
  const [locked, memberRows, earlierRows, rich] = await Promise.all([
    tx.execute(sql`
      select id, last_seq, members_version, change_seq, blocked from ${conversations}
      where id = any(${uuidArray(convIds)})
      order by id
      for update`),
    tx.execute(sql`
      select x.c, x.u
      from json_to_recordset(${JSON.stringify([...pairs.values()])}::json) as x(c uuid, u uuid)
      cross join lateral (
        select 1 from ${conversationMembers} m where m.conversation_id = x.c and m.user_id = x.u limit 1
      ) m`),
    earlierQuery(tx, reqs) ?? [],
    richLookups(tx, reqs),
  ])
  const earlier = earlierMessages(earlierRows)
  const lockedRows = rowsOf(locked)
  const lastSeq = new Map(lockedRows.map((c) => [c.id as string, Number(c.last_seq)]))
  const membersVersion = new Map(lockedRows.map((c) => [c.id as string, Number(c.members_version)]))
  const changeSeq = new Map(lockedRows.map((c) => [c.id as string, Number(c.change_seq)]))
  const members = new Set(rowsOf(memberRows).map((m) => `${m.c}/${m.u}`))
  // Direct conversations a block closed, read under the lock the block change also takes.
  const closed = new Set(lockedRows.filter((c) => c.blocked === true).map((c) => c.id as string))

  const outcomes: Outcome[] = []
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
      outcomes.push({ message: before, created: false, parent: parentOf(before, rich) })
      continue
    }
    if (closed.has(req.conversationId)) {
      outcomes.push(new BlockedError('this direct conversation is closed: one of you blocks the other'))
      continue
    }
    const parent = checkRich(req, rich)
    if (parent instanceof Error) {
      outcomes.push(parent)
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
      attachments: req.attachments ?? [],
      replyToId: req.replyToId ?? null,
      mentions: req.mentions ?? [],
      mentionsAll: req.mentionsAll ?? false,
      reactionsRev: 0,
    }
    if (key !== undefined) inBatch.set(key, row)
    rows.push(row)
    outcomes.push({ message: row, created: true, parent })
  }
  let threads: ThreadChange[] = []
  let inserted: Promise<void> | undefined
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
      ...(r.replyToId !== null ? { r: r.replyToId } : {}),
      ...(r.mentions.length > 0 ? { mn: `{${r.mentions.join(',')}}` } : {}),
      ...(r.mentionsAll ? { ma: true } : {}),
    }))
    // Absent keys are null: a plain message's JSON stays as short as before.
    const insert = tx.execute(sql`
      with inserted as (
        insert into ${messages} (id, conversation_id, seq, sender_id, content, client_msg_id, created_at, reply_to_id, mentions, mentions_all)
        select x.id, x.c, x.seq, x.s, x.t, x.k, ${now.toISOString()}::timestamptz,
          x.r, coalesce(x.mn::uuid[], '{}'), coalesce(x.ma, false)
        from json_to_recordset(${JSON.stringify(values)}::json)
          as x(id uuid, c uuid, seq bigint, s uuid, t text, k text, r uuid, mn text, ma boolean)
      )
      update ${conversations} as c
      set last_seq = v.seq, last_activity_at = ${now.toISOString()}::timestamptz
      from json_to_recordset(${JSON.stringify(touched)}::json) as v(id uuid, seq bigint)
      where c.id = v.id`)
    const claims = claimsOf(rows)
    if (options.pipelined === true && claims.length === 0 && rich === undefined) {
      // `then` now, not later: drizzle and postgres.js start a statement when it is awaited, and
      // it must be on the wire before the COMMIT that returning from the transaction sends.
      inserted = insert.then(() => undefined)
      inserted.catch(() => {})
    } else {
      await insert
      await claimAttachments(tx, claims)
      threads = await writeRich(tx, rows, rich, changeSeq)
    }
  }
  return { outcomes, membersVersion, threads, ...(inserted ? { inserted } : {}) }
}

/** The replied-to message of an earlier message returned for a repeated client_msg_id. */
function parentOf(m: MessageRow, rich: RichLookups | undefined): ParentInfo | null {
  if (m.replyToId === null) return null
  const p = rich?.parents.get(`${m.conversationId}/${m.replyToId}`)
  return p ? { id: p.id, seq: p.seq, senderId: p.senderId, excerpt: p.excerpt } : null
}

const idempotencyKey = (r: {
  conversationId: string
  senderId: string | null
  clientMsgId: string | null
}) => (r.clientMsgId === null ? undefined : `${r.conversationId}/${r.senderId}/${r.clientMsgId}`)

const claimsOf = (rows: MessageRow[]): Claim[] =>
  rows
    .filter((r) => r.attachments.length > 0)
    .map((r) => ({
      conversationId: r.conversationId,
      messageId: r.id,
      senderId: r.senderId as string,
      attachments: r.attachments,
    }))

const toDate = (v: unknown): Date | null => (v === null || v === undefined ? null : new Date(v as string))

/** Messages already stored under the batch's client_msg_ids (undefined when it has none). */
function earlierQuery(tx: Db, reqs: SendRequest[]) {
  const keys = reqs
    .filter((r) => r.clientMsgId !== null)
    .map((r) => ({ c: r.conversationId, s: r.senderId, k: r.clientMsgId }))
  if (keys.length === 0) return undefined
  return tx.execute(sql`
      select m.*
      from json_to_recordset(${JSON.stringify(keys)}::json) as x(c uuid, s uuid, k text)
      cross join lateral (
        select id, conversation_id, seq, sender_id, content, client_msg_id, created_at, edited_at, deleted_at,
          attachments, reply_to_id, mentions::text, mentions_all, reactions_rev
        from ${messages}
        where conversation_id = x.c and sender_id = x.s and client_msg_id = x.k and client_msg_id is not null
        limit 1
      ) m`)
}

/** The rows of `earlierQuery`, keyed like `idempotencyKey`. */
function earlierMessages(result: unknown): Map<string, MessageRow> {
  const found = rowsOf(result).map(
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
      attachments: (typeof m.attachments === 'string'
        ? JSON.parse(m.attachments)
        : m.attachments) as AttachmentMeta[],
      replyToId: (m.reply_to_id as string | null) ?? null,
      mentions: textArray(m.mentions),
      mentionsAll: m.mentions_all === true,
      reactionsRev: Number(m.reactions_rev ?? 0),
    }),
  )
  return new Map(found.map((m) => [idempotencyKey(m) as string, m]))
}

/** PostgreSQL's text form of a uuid[] (`{a,b}`) as an array. */
function textArray(v: unknown): string[] {
  return typeof v === 'string' && v.length > 2 ? v.slice(1, -1).split(',') : []
}
