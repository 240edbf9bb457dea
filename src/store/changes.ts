import { and, asc, eq, gt, lte, sql } from 'drizzle-orm'
import { type Db, rowsOf, uuidArray } from './db.js'
import { wasMemberAt } from './members.js'
import { type RichMessage, selectRich, toRich } from './message-views.js'
import { conversations, messageChanges, messages } from './schema.js'

/**
 * The change counter (docs/client.md, "Changes to messages you already have"): every change to a
 * message takes the next `conversations.change_seq` and records it in `message_changes`, in one
 * statement run as the last of its transaction. The conversation's row stays locked from there to
 * the commit, so changes commit in counter order, and the lock is held as briefly as possible
 * (the group commit waits on the same row).
 *
 * Every writer of a message's visible state calls `recordChange` (edits, deletes, reactions, pins
 * here; the group commit records thread summaries in `message-batch-rich.ts`; the retention job
 * calls `recordChanges` for its batch). Lock order: the
 * message's row, then the conversation's, then the change row; the group commit takes only the
 * latter two, in the same order.
 */
export async function recordChange(tx: Db, conversationId: string, messageId: string): Promise<number> {
  const rows = rowsOf(
    await tx.execute(sql`
      with c as (
        update ${conversations} set change_seq = change_seq + 1 where id = ${conversationId} returning change_seq
      )
      insert into ${messageChanges} (conversation_id, message_id, change_seq)
      select ${conversationId}, ${messageId}, c.change_seq from c
      on conflict (conversation_id, message_id) do update set change_seq = excluded.change_seq
      returning change_seq`),
  )
  return Number(rows[0]?.change_seq ?? 0)
}

/** A message to record a change of; `seq` orders the changes within a conversation. */
export interface ChangedMessage {
  conversationId: string
  id: string
  seq: number
}

/**
 * `recordChange` for many messages at once, in one statement whatever their number (the retention
 * job's batch): each conversation's counter moves once, past all of its messages, and each message
 * takes its own position, in seq order. The conversations' rows are locked in id order, as the
 * group commit locks them, so neither waits on the other in a cycle. Like `recordChange`, run it
 * after the messages' rows are locked, and as late in the transaction as the lock order allows.
 */
export async function recordChanges(tx: Db, changed: ChangedMessage[]): Promise<void> {
  if (changed.length === 0) return
  const keys = JSON.stringify(changed.map((m) => ({ c: m.conversationId, m: m.id, s: m.seq })))
  await tx.execute(sql`
    with k as (
      select * from json_to_recordset(${keys}::json) as k(c uuid, m uuid, s bigint)
    ), locked as materialized (
      select id, change_seq from ${conversations} where id in (select c from k) order by id for update
    ), numbered as (
      select k.c, k.m, l.change_seq + row_number() over (partition by k.c order by k.s) as ch
      from k join locked l on l.id = k.c
    ), changes as (
      insert into ${messageChanges} (conversation_id, message_id, change_seq)
      select numbered.c, numbered.m, numbered.ch from numbered
      on conflict (conversation_id, message_id) do update set change_seq = excluded.change_seq
    )
    update ${conversations} as c set change_seq = v.ch
    from (select numbered.c, max(numbered.ch) as ch from numbered group by numbered.c) v
    where c.id = v.c`)
}

/** The current change counter of each conversation given. */
export async function changePositions(db: Db, ids: string[]): Promise<Map<string, number>> {
  if (ids.length === 0) return new Map()
  const rows = rowsOf(
    await db.execute(sql`select id, change_seq from ${conversations} where id = any(${uuidArray(ids)})`),
  )
  return new Map(rows.map((r) => [r.id as string, Number(r.change_seq)]))
}

/**
 * Messages of a conversation whose latest change is after `afterChange`, in change order, among
 * those up to `upToSeq` (what the client holds) that reached `userId` as a member. A keyset page
 * on `message_changes_seq_key`; each row carries its change position as `extras.changeSeq`.
 */
export async function changedSince(
  db: Db,
  conversationId: string,
  userId: string,
  afterChange: number,
  upToSeq: number,
  limit: number,
): Promise<RichMessage[]> {
  const rows = await selectRich(db, userId)
    .where(
      and(
        eq(messageChanges.conversationId, conversationId),
        gt(messageChanges.changeSeq, afterChange),
        eq(messages.conversationId, conversationId),
        lte(messages.seq, upToSeq),
        wasMemberAt(conversationId, userId, messages.seq),
      ),
    )
    .orderBy(asc(messageChanges.changeSeq))
    .limit(limit)
  return rows.map(toRich)
}
