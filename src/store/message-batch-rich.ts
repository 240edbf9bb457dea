import { sql } from 'drizzle-orm'
import { type AppError, ForbiddenError, invalid } from '../errors.js'
import { type Db, rowsOf, uuidArray } from './db.js'
import { EXCERPT_CHARS, type ParentInfo, type ThreadInfo } from './message-views.js'
import {
  conversationMembers,
  conversations,
  type MessageRow,
  messageChanges,
  messageMentions,
  messages,
  messageThreads,
} from './schema.js'

/**
 * The group commit's part for replies and mentions. Every statement here runs only when the batch
 * holds a reply or a mention, so plain messages cost what they did before. All of it runs under
 * the conversations' row locks, which is what makes thread counts exact under concurrent replies.
 */

/** What the rich part of a send asks for. */
export interface RichRequest {
  conversationId: string
  senderId: string
  replyToId?: string | null | undefined
  mentions?: string[] | undefined
  mentionsAll?: boolean | undefined
}

export interface RichLookups {
  parents: Map<string, ParentInfo & { conversationId: string }>
  /** conversation id → member id → role, for conversations with mentions. */
  members: Map<string, Map<string, string>>
  kinds: Map<string, string>
  threads: Map<string, ThreadInfo>
}

/** One thread whose summary this batch changed. */
export interface ThreadChange {
  conversationId: string
  messageId: string
  seq: number
  thread: ThreadInfo
  /** The conversation's change counter for this change (store/changes.ts). */
  changeSeq: number
}

const PARTICIPANTS_SHOWN = 5
const key = (c: string, m: string) => `${c}/${m}`

/** The reads the rich part needs, as one promise (undefined when the batch has no reply or mention). */
export function richLookups(tx: Db, reqs: RichRequest[]): Promise<RichLookups> | undefined {
  const replies = reqs.filter((r) => r.replyToId).map((r) => ({ c: r.conversationId, m: r.replyToId }))
  const mentionConvs = [
    ...new Set(reqs.filter((r) => r.mentions?.length || r.mentionsAll).map((r) => r.conversationId)),
  ]
  if (replies.length === 0 && mentionConvs.length === 0) return undefined
  const none = Promise.resolve([] as unknown)
  return Promise.all([
    replies.length === 0
      ? none
      : tx.execute(sql`
      select p.id, p.conversation_id, p.seq, p.sender_id,
        case when p.deleted_at is null then left(p.content, ${EXCERPT_CHARS}) end as excerpt,
        t.reply_count, t.last_reply_at, t.participants
      from json_to_recordset(${JSON.stringify(replies)}::json) as x(c uuid, m uuid)
      join ${messages} p on p.conversation_id = x.c and p.id = x.m
      left join ${messageThreads} t on t.conversation_id = p.conversation_id and t.message_id = p.id`),
    mentionConvs.length === 0
      ? none
      : tx.execute(sql`
      select m.conversation_id, m.user_id, m.role, c.kind
      from ${conversationMembers} m join ${conversations} c on c.id = m.conversation_id
      where m.conversation_id = any(${uuidArray(mentionConvs)})`),
  ]).then(([parentRows, memberRows]) => toLookups(parentRows, memberRows))
}

function toLookups(parentRows: unknown, memberRows: unknown): RichLookups {
  const out: RichLookups = { parents: new Map(), members: new Map(), kinds: new Map(), threads: new Map() }
  for (const p of rowsOf(parentRows)) {
    const c = p.conversation_id as string
    const id = p.id as string
    out.parents.set(key(c, id), {
      id,
      conversationId: c,
      seq: Number(p.seq),
      senderId: p.sender_id as string | null,
      excerpt: p.excerpt as string | null,
    })
    if (p.reply_count !== null && p.reply_count !== undefined)
      out.threads.set(key(c, id), {
        replyCount: Number(p.reply_count),
        lastReplyAt: new Date(p.last_reply_at as string),
        participants: pgArray(p.participants),
      })
  }
  for (const m of rowsOf(memberRows)) {
    const c = m.conversation_id as string
    const roles = out.members.get(c) ?? new Map<string, string>()
    roles.set(m.user_id as string, m.role as string)
    out.members.set(c, roles)
    out.kinds.set(c, m.kind as string)
  }
  return out
}

/** A uuid[] as the driver gave it: an array, or PostgreSQL's text form `{a,b}`. */
function pgArray(v: unknown): string[] {
  if (Array.isArray(v)) return v as string[]
  if (typeof v !== 'string' || v === '{}') return []
  return v.slice(1, -1).split(',')
}

/**
 * Checks one send's reply and mentions against the lookups: the replied-to message is in the
 * same conversation, every mentioned user is a member, and `@all` comes from a group's admin or
 * owner. Returns the parent (or null), or the error the send gets.
 */
export function checkRich(req: RichRequest, found: RichLookups | undefined): ParentInfo | null | AppError {
  let parent: ParentInfo | null = null
  if (req.replyToId) {
    const p = found?.parents.get(key(req.conversationId, req.replyToId))
    if (!p) return invalid('reply_to', 'is not a message of this conversation')
    parent = { id: p.id, seq: p.seq, senderId: p.senderId, excerpt: p.excerpt }
  }
  const roles = found?.members.get(req.conversationId)
  if ((req.mentions ?? []).some((u) => !roles?.has(u)))
    return invalid('mentions', 'every mentioned user must be a member')
  if (req.mentionsAll) {
    const role = roles?.get(req.senderId)
    if (found?.kinds.get(req.conversationId) !== 'group' || (role !== 'owner' && role !== 'admin'))
      return new ForbiddenError('only a group admin or owner may mention @all')
  }
  return parent
}

/**
 * Writes the thread summaries and mention rows of the stored `rows` (in seq order). Returns the
 * threads whose summary changed, with the summary as committed.
 */
export async function writeRich(
  tx: Db,
  rows: MessageRow[],
  found: RichLookups | undefined,
  /** Each locked conversation's change counter before the batch. */
  changeSeq: Map<string, number>,
): Promise<ThreadChange[]> {
  if (!found) return []
  const changed = new Map<string, ThreadChange>()
  for (const r of rows) {
    if (r.replyToId === null || r.senderId === null) continue
    const k = key(r.conversationId, r.replyToId)
    const parent = found.parents.get(k)
    if (!parent) continue
    const before = changed.get(k)?.thread ?? found.threads.get(k)
    const participants = before?.participants ?? []
    const thread: ThreadInfo = {
      replyCount: (before?.replyCount ?? 0) + 1,
      lastReplyAt: r.createdAt,
      participants:
        participants.length < PARTICIPANTS_SHOWN && !participants.includes(r.senderId)
          ? [...participants, r.senderId]
          : participants,
    }
    changed.set(k, {
      conversationId: r.conversationId,
      messageId: parent.id,
      seq: parent.seq,
      thread,
      changeSeq: 0,
    })
  }
  // One change per root whose summary moved, numbered in the order the roots first changed.
  for (const t of changed.values()) {
    t.changeSeq = (changeSeq.get(t.conversationId) ?? 0) + 1
    changeSeq.set(t.conversationId, t.changeSeq)
  }
  const mentioned = rows.flatMap((r) => {
    const targets = r.mentionsAll ? [...(found.members.get(r.conversationId)?.keys() ?? [])] : r.mentions
    return [...new Set(targets)]
      .filter((u) => u !== r.senderId)
      .map((u) => ({ c: r.conversationId, m: r.id, u, s: r.seq }))
  })
  const at = rows[0]?.createdAt.toISOString()
  await Promise.all([
    changed.size === 0 ? undefined : upsertThreads(tx, [...changed.values()]),
    mentioned.length === 0
      ? undefined
      : tx.execute(sql`
      insert into ${messageMentions} (conversation_id, message_id, user_id, seq, created_at)
      select x.c, x.m, x.u, x.s, ${at}::timestamptz
      from json_to_recordset(${JSON.stringify(mentioned)}::json) as x(c uuid, m uuid, u uuid, s bigint)
      on conflict do nothing`),
  ])
  return [...changed.values()]
}

/**
 * The summaries, their changes (`message_changes`) and the conversations' change counters, in one
 * statement. The batch holds the conversations' rows already; the roots' rows are not touched.
 */
function upsertThreads(tx: Db, changes: ThreadChange[]) {
  const values = changes.map((t) => ({
    c: t.conversationId,
    m: t.messageId,
    n: t.thread.replyCount,
    at: t.thread.lastReplyAt.toISOString(),
    p: `{${t.thread.participants.join(',')}}`,
    ch: t.changeSeq,
  }))
  return tx.execute(sql`
    with x as (
      select * from json_to_recordset(${JSON.stringify(values)}::json)
        as x(c uuid, m uuid, n int, at timestamptz, p text, ch bigint)
    ), threads as (
      insert into ${messageThreads} (conversation_id, message_id, reply_count, last_reply_at, participants)
      select x.c, x.m, x.n, x.at, x.p::uuid[] from x
      on conflict (conversation_id, message_id) do update
      set reply_count = excluded.reply_count, last_reply_at = excluded.last_reply_at, participants = excluded.participants
    ), changes as (
      insert into ${messageChanges} (conversation_id, message_id, change_seq)
      select x.c, x.m, x.ch from x
      on conflict (conversation_id, message_id) do update set change_seq = excluded.change_seq
    )
    update ${conversations} as c set change_seq = v.ch
    from (select x.c, max(x.ch) as ch from x group by x.c) v
    where c.id = v.c`)
}
