import { eq, sql } from 'drizzle-orm'
import type { AttachmentRef } from './attachments.js'
import { recordChanges } from './changes.js'
import { type Db, rowsOf } from './db.js'
import {
  attachments,
  conversations,
  messageMentions,
  messagePins,
  messageReactions,
  messages,
  messageThreads,
} from './schema.js'

/** A message the retention job tombstoned. */
export interface ExpiredMessage {
  conversationId: string
  id: string
  seq: number
}

/** What one batch did: the messages it tombstoned and the attachments it marked for removal. */
export interface ExpiredBatch {
  messages: ExpiredMessage[]
  attachments: AttachmentRef[]
}

/** Where the job stands in a run: conversations are walked in id order from here (inclusive). */
export const FIRST_CONVERSATION = '00000000-0000-0000-0000-000000000000'

/** Sets (or, with null, clears) a conversation's own retention. */
export async function setRetentionDays(db: Db, conversationId: string, days: number | null): Promise<void> {
  await db
    .update(conversations)
    .set({ retentionDays: days, updatedAt: new Date() })
    .where(eq(conversations.id, conversationId))
}

/**
 * Tombstones up to `limit` expired messages, from the conversation `from` on (in id order): those
 * not yet deleted and created more than the conversation's retention (its own setting, else
 * `defaultDays`; none when both are null) before `now`. A tombstone is what a deletion leaves
 * (content and attachments emptied, `deleted_at` set, `seq`, sender and timestamps kept), and its
 * mentions, reactions, pin and thread summary go with it; its attachments are marked for removal
 * (their objects are deleted after commit, or by the attachment sweep). Each tombstone is a change
 * (`recordChanges`: one position per message, the counter moved once per conversation), so a client
 * that resumes with its change position gets it as `message.changed`. Conversation rows are locked
 * only for the batch's last two statements, so sends go on meanwhile; each message row is locked
 * only for this transaction, and one deleted concurrently is skipped (the `deleted_at is null`
 * check is repeated under the lock). Run inside a transaction.
 */
export async function expireBatch(
  tx: Db,
  opts: { now: Date; defaultDays: number | null; from: string; limit: number },
): Promise<ExpiredBatch> {
  const { now, defaultDays, from, limit } = opts
  const at = now.toISOString()
  // Without a server default only conversations with a setting of their own can expire anything:
  // walk those alone (a partial index holds them).
  const withRetention = defaultDays === null ? sql`and c.retention_days is not null` : sql``
  const updated = await tx.execute(sql`
    with due as (
      select m.conversation_id, m.id
      from ${conversations} c
      cross join lateral (
        select x.conversation_id, x.id from ${messages} x
        where x.conversation_id = c.id and x.deleted_at is null
          and x.created_at < ${at}::timestamptz
            - make_interval(days => coalesce(c.retention_days, ${defaultDays}::int))
        order by x.created_at
        limit ${limit}
      ) m
      where c.id >= ${from}::uuid ${withRetention}
      order by c.id
      limit ${limit}
    )
    update ${messages} as m
    set content = '', attachments = '[]'::jsonb, mentions = '{}'::uuid[], mentions_all = false,
      deleted_at = ${at}::timestamptz
    from due
    where m.conversation_id = due.conversation_id and m.id = due.id and m.deleted_at is null
    returning m.conversation_id, m.id, m.seq`)
  const expired = rowsOf(updated).map((r) => ({
    conversationId: r.conversation_id as string,
    id: r.id as string,
    seq: Number(r.seq),
  }))
  if (expired.length === 0) return { messages: [], attachments: [] }
  const keys = sql`json_to_recordset(${JSON.stringify(expired.map((m) => ({ c: m.conversationId, m: m.id })))}::json) as k(c uuid, m uuid)`
  const [, , , refs] = await Promise.all([
    tx.execute(sql`delete from ${messagePins} p using ${keys}
      where p.conversation_id = k.c and p.message_id = k.m`),
    tx.execute(sql`delete from ${messageReactions} r using ${keys}
      where r.conversation_id = k.c and r.message_id = k.m`),
    tx.execute(sql`delete from ${messageMentions} n using ${keys}
      where n.conversation_id = k.c and n.message_id = k.m`),
    tx.execute(sql`update ${attachments} a set deleted_at = ${at}::timestamptz from ${keys}
      where a.conversation_id = k.c and a.message_id = k.m and a.deleted_at is null
      returning a.conversation_id, a.id, a.storage_key, a.thumbnail_key`),
  ])
  // From here to the commit the conversations' rows are locked, which holds their sends back:
  // as late as possible, but before the thread summaries, which the group commit writes under
  // that lock (the other way round, a reply to an expiring root would deadlock with the batch).
  await recordChanges(tx, expired)
  await tx.execute(sql`delete from ${messageThreads} t using ${keys}
      where t.conversation_id = k.c and t.message_id = k.m`)
  return {
    messages: expired,
    attachments: rowsOf(refs).map((r) => ({
      conversationId: r.conversation_id as string,
      id: r.id as string,
      storageKey: r.storage_key as string,
      thumbnailKey: (r.thumbnail_key as string | null) ?? null,
    })),
  }
}
