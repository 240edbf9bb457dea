import { and, asc, eq, gt } from 'drizzle-orm'
import type { Db } from './db.js'
import { conversationBans as bans, users } from './schema.js'

/** Records a ban; false when the user was banned already. */
export async function insertBan(
  db: Db,
  conversationId: string,
  userId: string,
  bannedBy: string,
): Promise<boolean> {
  const rows = await db
    .insert(bans)
    .values({ conversationId, userId, bannedBy })
    .onConflictDoNothing()
    .returning({ userId: bans.userId })
  return rows.length > 0
}

/** Lifts a ban; false when there was none. */
export async function deleteBan(db: Db, conversationId: string, userId: string): Promise<boolean> {
  const rows = await db
    .delete(bans)
    .where(and(eq(bans.conversationId, conversationId), eq(bans.userId, userId)))
    .returning({ userId: bans.userId })
  return rows.length > 0
}

export async function isBanned(db: Db, conversationId: string, userId: string): Promise<boolean> {
  const [row] = await db
    .select({ userId: bans.userId })
    .from(bans)
    .where(and(eq(bans.conversationId, conversationId), eq(bans.userId, userId)))
  return row !== undefined
}

export interface BanRow {
  userId: string
  fullName: string
  bannedBy: string | null
  createdAt: Date
}

/** A group's bans by user id, after `afterUserId`. */
export async function listBans(
  db: Db,
  conversationId: string,
  afterUserId: string | undefined,
  limit: number,
): Promise<BanRow[]> {
  return db
    .select({
      userId: bans.userId,
      fullName: users.fullName,
      bannedBy: bans.bannedBy,
      createdAt: bans.createdAt,
    })
    .from(bans)
    .innerJoin(users, eq(users.id, bans.userId))
    .where(
      and(
        eq(bans.conversationId, conversationId),
        afterUserId === undefined ? undefined : gt(bans.userId, afterUserId),
      ),
    )
    .orderBy(asc(bans.userId))
    .limit(limit)
}
