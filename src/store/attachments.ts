import { and, asc, eq, inArray, isNotNull, isNull, sql } from 'drizzle-orm'
import { ConflictError } from '../errors.js'
import { type Db, rowsOf } from './db.js'
import {
  type AttachmentMeta,
  type AttachmentRow,
  attachments,
  conversationMembers,
  messages,
  users,
} from './schema.js'

/** What the sweep and a message deletion need to remove an attachment's objects, then its row. */
export interface AttachmentRef {
  conversationId: string
  id: string
  storageKey: string
  thumbnailKey: string | null
}

const refColumns = {
  conversationId: attachments.conversationId,
  id: attachments.id,
  storageKey: attachments.storageKey,
  thumbnailKey: attachments.thumbnailKey,
}

/**
 * Records a new attachment if the uploader's stored bytes plus `row.size` stay within `quota`;
 * returns the bytes in use otherwise (and records nothing). The uploader's row is locked so two
 * uploads at once cannot both squeeze under the quota. Run inside a transaction.
 */
export async function insertWithinQuota(
  tx: Db,
  row: typeof attachments.$inferInsert,
  quota: number,
): Promise<{ inserted: true } | { inserted: false; used: number }> {
  const uploader = row.uploaderId as string
  await tx.select({ id: users.id }).from(users).where(eq(users.id, uploader)).for('update')
  const [sum] = await tx
    .select({ used: sql<string>`coalesce(sum(${attachments.size}), 0)` })
    .from(attachments)
    .where(and(eq(attachments.uploaderId, uploader), isNull(attachments.deletedAt)))
  const used = Number(sum?.used ?? 0)
  if (used + row.size > quota) return { inserted: false, used }
  await tx.insert(attachments).values(row)
  return { inserted: true }
}

/** The attachments of a conversation with these ids (any uploader, any state). */
export function findAttachments(db: Db, conversationId: string, ids: string[]): Promise<AttachmentRow[]> {
  return db
    .select()
    .from(attachments)
    .where(and(eq(attachments.conversationId, conversationId), inArray(attachments.id, ids)))
}

/** A sent attachment whose message `userId` may read now (a current member; not deleted). */
export async function findVisibleAttachment(
  db: Db,
  userId: string,
  id: string,
): Promise<AttachmentRow | undefined> {
  const [row] = await db
    .select({ a: attachments })
    .from(attachments)
    .innerJoin(
      messages,
      and(eq(messages.conversationId, attachments.conversationId), eq(messages.id, attachments.messageId)),
    )
    .where(
      and(
        eq(attachments.id, id),
        isNull(attachments.deletedAt),
        isNull(messages.deletedAt),
        sql`exists (select 1 from ${conversationMembers} m where m.conversation_id = ${attachments.conversationId} and m.user_id = ${userId})`,
      ),
    )
  return row?.a
}

/** Records the thumbnail stored beside an attachment. */
export async function setThumbnail(db: Db, conversationId: string, id: string, key: string): Promise<void> {
  await db
    .update(attachments)
    .set({ thumbnailKey: key })
    .where(and(eq(attachments.conversationId, conversationId), eq(attachments.id, id)))
}

/** One message's attachments to claim in the send transaction. */
export interface Claim {
  conversationId: string
  messageId: string
  senderId: string
  attachments: AttachmentMeta[]
}

/**
 * Ties attachments to their new messages, inside the send transaction, after the messages were
 * inserted: each must still be the sender's, in that conversation, unused and not expired. When
 * one is not (a concurrent send took it first, the sweep expired it), the whole transaction fails,
 * so nothing is stored; the writer then retries its neighbours on their own.
 */
export async function claimAttachments(tx: Db, claims: Claim[]): Promise<void> {
  if (claims.length === 0) return
  const wanted = claims.flatMap((c) =>
    c.attachments.map((a) => ({
      c: c.conversationId,
      id: a.id,
      m: c.messageId,
      s: c.senderId,
      w: a.width,
      h: a.height,
    })),
  )
  const claimed = await tx.execute(sql`
    update ${attachments} as a
    set message_id = x.m, width = x.w, height = x.h
    from json_to_recordset(${JSON.stringify(wanted)}::json) as x(c uuid, id uuid, m uuid, s uuid, w int, h int)
    where a.conversation_id = x.c and a.id = x.id and a.uploader_id = x.s
      and a.message_id is null and a.deleted_at is null
    returning a.id`)
  if (rowsOf(claimed).length !== wanted.length) {
    throw new ConflictError('an attachment was used by another message or has expired; nothing was sent')
  }
  const views = claims.map((c) => ({ c: c.conversationId, m: c.messageId, a: c.attachments }))
  await tx.execute(sql`
    update ${messages} as m set attachments = x.a
    from json_to_recordset(${JSON.stringify(views)}::json) as x(c uuid, m uuid, a jsonb)
    where m.conversation_id = x.c and m.id = x.m`)
}

/** Marks a deleted message's attachments for removal and returns them. Run in the delete transaction. */
export function releaseMessageAttachments(
  tx: Db,
  conversationId: string,
  messageId: string,
): Promise<AttachmentRef[]> {
  return tx
    .update(attachments)
    .set({ deletedAt: new Date() })
    .where(
      and(
        eq(attachments.conversationId, conversationId),
        eq(attachments.messageId, messageId),
        isNull(attachments.deletedAt),
      ),
    )
    .returning(refColumns)
}

/** Attachments never sent and created before `before` are marked for removal; returns how many. */
export async function expireUnsent(tx: Db, before: Date): Promise<number> {
  const rows = await tx
    .update(attachments)
    .set({ deletedAt: new Date() })
    .where(
      and(
        isNull(attachments.messageId),
        isNull(attachments.deletedAt),
        sql`${attachments.createdAt} < ${before.toISOString()}::timestamptz`,
      ),
    )
    .returning({ id: attachments.id })
  return rows.length
}

/** Attachments marked for removal, oldest first: their objects are still to be deleted. */
export function pendingRemoval(db: Db, limit: number): Promise<AttachmentRef[]> {
  return db
    .select(refColumns)
    .from(attachments)
    .where(isNotNull(attachments.deletedAt))
    .orderBy(asc(attachments.deletedAt))
    .limit(limit)
}

/** Forgets attachments whose objects are gone. */
export async function deleteAttachmentRows(db: Db, refs: AttachmentRef[]): Promise<void> {
  if (refs.length === 0) return
  const keys = refs.map((r) => ({ c: r.conversationId, id: r.id }))
  await db.execute(sql`
    delete from ${attachments} as a
    using json_to_recordset(${JSON.stringify(keys)}::json) as x(c uuid, id uuid)
    where a.conversation_id = x.c and a.id = x.id and a.deleted_at is not null`)
}

/**
 * Takes the lock that lets one instance at a time run a periodic job, for the rest of the
 * transaction (a transaction-level advisory lock: released by commit, rollback or a lost
 * connection, so a crashed instance never holds it). False when another instance holds it.
 */
export async function tryJobLock(tx: Db, lockId: number): Promise<boolean> {
  const [row] = rowsOf(await tx.execute(sql`select pg_try_advisory_xact_lock(${lockId}) as locked`))
  return row?.locked === true
}
