import { and, asc, desc, eq, gt, isNull, lt, or, sql } from 'drizzle-orm'
import { type Db, uuidArray } from './db.js'
import { isMember } from './members.js'
import { type RichMessage, selectRich, toRich } from './message-views.js'
import { conversationMembers as members, messageMentions, messagePins, messages } from './schema.js'

/** Replies to `rootId` after `afterSeq`, oldest first (a thread reads top down), for a member only. */
export async function repliesPage(
  db: Db,
  viewerId: string,
  conversationId: string,
  rootId: string,
  afterSeq: number,
  limit: number,
): Promise<RichMessage[]> {
  const rows = await selectRich(db, viewerId)
    .where(
      and(
        eq(messages.conversationId, conversationId),
        eq(messages.replyToId, rootId),
        gt(messages.seq, afterSeq),
        isMember(conversationId, viewerId),
      ),
    )
    .orderBy(asc(messages.seq))
    .limit(limit)
  return rows.map(toRich)
}

/** Where a mentions page continues: before this mention (newest first). */
export interface MentionCursor {
  at: Date
  messageId: string
}

/**
 * Messages mentioning `userId` in conversations they are a member of now, newest first; deleted
 * ones are left out. Keyset on (created_at, message_id) over `message_mentions_user_idx`.
 */
export async function mentionsPage(
  db: Db,
  userId: string,
  before: MentionCursor | undefined,
  limit: number,
): Promise<RichMessage[]> {
  const rows = await selectRich(db, userId)
    .innerJoin(
      messageMentions,
      and(
        eq(messageMentions.conversationId, messages.conversationId),
        eq(messageMentions.messageId, messages.id),
        eq(messageMentions.userId, userId),
      ),
    )
    .innerJoin(
      members,
      and(eq(members.conversationId, messageMentions.conversationId), eq(members.userId, userId)),
    )
    .where(
      and(
        isNull(messages.deletedAt),
        before
          ? or(
              lt(messageMentions.createdAt, before.at),
              and(eq(messageMentions.createdAt, before.at), lt(messageMentions.messageId, before.messageId)),
            )
          : undefined,
      ),
    )
    .orderBy(desc(messageMentions.createdAt), desc(messageMentions.messageId))
    .limit(limit)
  // A mention's created_at is its message's (written together), so the message's continues the page.
  return rows.map(toRich)
}

/** Mentions of the user after their read marker, per conversation (deleted messages do not count). */
export async function unreadMentionCounts(
  db: Db,
  userId: string,
  conversationIds: string[],
): Promise<Map<string, number>> {
  if (conversationIds.length === 0) return new Map()
  const rows = await db
    .select({ id: messageMentions.conversationId, n: sql<number>`count(*)::int` })
    .from(messageMentions)
    .innerJoin(
      members,
      and(eq(members.conversationId, messageMentions.conversationId), eq(members.userId, userId)),
    )
    .innerJoin(
      messages,
      and(
        eq(messages.conversationId, messageMentions.conversationId),
        eq(messages.id, messageMentions.messageId),
      ),
    )
    .where(
      and(
        eq(messageMentions.userId, userId),
        sql`${messageMentions.conversationId} = any(${uuidArray(conversationIds)})`,
        sql`${messageMentions.seq} > ${members.lastReadSeq}`,
        isNull(messages.deletedAt),
      ),
    )
    .groupBy(messageMentions.conversationId)
  return new Map(rows.map((r) => [r.id, r.n]))
}

/** The conversation's pinned messages, the latest pin first, for a member only. */
export async function pinsPage(
  db: Db,
  viewerId: string,
  conversationId: string,
  limit: number,
): Promise<RichMessage[]> {
  const rows = await selectRich(db, viewerId)
    .where(
      and(
        eq(messages.conversationId, conversationId),
        isMember(conversationId, viewerId),
        sql`${messagePins.messageId} is not null`,
      ),
    )
    .orderBy(desc(messagePins.pinnedAt), desc(messages.seq))
    .limit(limit)
  return rows.map(toRich)
}

/** Pins a message; the pin, or undefined when it was pinned already. */
export async function insertPin(db: Db, conversationId: string, messageId: string, by: string) {
  const [row] = await db
    .insert(messagePins)
    .values({ conversationId, messageId, pinnedBy: by })
    .onConflictDoNothing()
    .returning()
  return row
}

/** When the message was pinned, or undefined when it is not. */
export async function pinnedAt(db: Db, conversationId: string, messageId: string): Promise<Date | undefined> {
  const [row] = await db
    .select({ at: messagePins.pinnedAt })
    .from(messagePins)
    .where(and(eq(messagePins.conversationId, conversationId), eq(messagePins.messageId, messageId)))
  return row?.at
}

/** Unpins a message; true when it was pinned. */
export async function deletePin(db: Db, conversationId: string, messageId: string): Promise<boolean> {
  const rows = await db
    .delete(messagePins)
    .where(and(eq(messagePins.conversationId, conversationId), eq(messagePins.messageId, messageId)))
    .returning({ id: messagePins.messageId })
  return rows.length > 0
}
