import { and, eq, inArray, isNull, ne, or, sql } from 'drizzle-orm'
import type { Db } from './db.js'
import { conversations, conversationMembers as members, messages } from './schema.js'

/**
 * Moves a read marker forward to `seq`, never back and never past the conversation's last
 * message. Returns the new marker, or undefined when nothing moved (already there, or not a member).
 * One statement decides and moves, so concurrent reads report each forward move once.
 */
export async function advanceReadMarker(
  db: Db,
  conversationId: string,
  userId: string,
  seq: number,
): Promise<number | undefined> {
  const target = sql`least(${seq}::bigint, (select ${conversations.lastSeq} from ${conversations} where ${conversations.id} = ${conversationId}))`
  const [row] = await db
    .update(members)
    .set({ lastReadSeq: target })
    .where(
      and(
        eq(members.conversationId, conversationId),
        eq(members.userId, userId),
        sql`${members.lastReadSeq} < ${target}`,
      ),
    )
    .returning({ s: members.lastReadSeq })
  return row?.s
}

/** Messages from others after the user's read marker, per conversation (deleted ones do not count). */
export async function unreadCounts(
  db: Db,
  userId: string,
  conversationIds: string[],
): Promise<Map<string, number>> {
  if (conversationIds.length === 0) return new Map()
  const rows = await db
    .select({ id: messages.conversationId, n: sql<number>`count(*)::int` })
    .from(messages)
    .innerJoin(members, and(eq(members.conversationId, messages.conversationId), eq(members.userId, userId)))
    .where(
      and(
        inArray(messages.conversationId, conversationIds),
        sql`${messages.seq} > ${members.lastReadSeq}`,
        or(isNull(messages.senderId), ne(messages.senderId, userId)),
        isNull(messages.deletedAt),
      ),
    )
    .groupBy(messages.conversationId)
  return new Map(rows.map((r) => [r.id, r.n]))
}
