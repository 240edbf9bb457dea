import { and, desc, eq, inArray, lt, or, sql } from 'drizzle-orm'
import type { Db } from './db.js'
import { conversations, userBlocks, users } from './schema.js'

/** The key of the pair's direct conversation (`low:high`), also the name of the pair's lock. */
export const pairKey = (a: string, b: string): string => [a, b].sort().join(':')

/**
 * Serializes everything that decides whether the pair's direct conversation may exist or is
 * closed: block changes, and the creation of their direct conversation. A transaction-level
 * advisory lock, released by commit or rollback. Every statement after it sees what the previous
 * holder committed (READ COMMITTED takes a snapshot per statement).
 */
export async function lockPair(tx: Db, key: string): Promise<void> {
  await tx.execute(sql`select pg_advisory_xact_lock(hashtextextended(${`block:${key}`}, 0))`)
}

/** True when either user blocks the other. */
export async function pairBlocked(db: Db, a: string, b: string): Promise<boolean> {
  const rows = await db
    .select({ one: sql`1` })
    .from(userBlocks)
    .where(
      or(
        and(eq(userBlocks.blockerId, a), eq(userBlocks.blockedId, b)),
        and(eq(userBlocks.blockerId, b), eq(userBlocks.blockedId, a)),
      ),
    )
    .limit(1)
  return rows.length > 0
}

/**
 * Recomputes the `blocked` flag of the pair's direct conversation (if they have one) under its
 * row lock, the lock the group commit takes: a send racing the change commits wholly before it
 * (and is accepted) or after it (and sees the new flag).
 */
async function syncDirectFlag(tx: Db, key: string): Promise<void> {
  const [a, b] = key.split(':') as [string, string]
  await tx
    .update(conversations)
    .set({ blocked: await pairBlocked(tx, a, b) })
    .where(eq(conversations.directKey, key))
}

/**
 * Adds (`on`) or removes the block of `blockedId` by `blockerId` and updates their direct
 * conversation in the same transaction. Returns whether anything changed (both are idempotent).
 */
export async function setBlock(db: Db, blockerId: string, blockedId: string, on: boolean): Promise<boolean> {
  const key = pairKey(blockerId, blockedId)
  return db.transaction(async (tx) => {
    await lockPair(tx, key)
    const changed = on
      ? await tx
          .insert(userBlocks)
          .values({ blockerId, blockedId })
          .onConflictDoNothing()
          .returning({ id: userBlocks.blockedId })
      : await tx
          .delete(userBlocks)
          .where(and(eq(userBlocks.blockerId, blockerId), eq(userBlocks.blockedId, blockedId)))
          .returning({ id: userBlocks.blockedId })
    if (changed.length > 0) await syncDirectFlag(tx, key)
    return changed.length > 0
  })
}

/**
 * Removes every block `userId` made (account deletion: their list is their data) and reopens the
 * direct conversations no other block keeps closed. Blocks others made of them stay: those are
 * the others' choices. Runs inside the caller's transaction.
 */
export async function deleteBlocksBy(tx: Db, userId: string): Promise<string[]> {
  const removed = await tx
    .delete(userBlocks)
    .where(eq(userBlocks.blockerId, userId))
    .returning({ id: userBlocks.blockedId })
  const keys = removed.map((r) => pairKey(userId, r.id)).sort()
  for (const key of keys) {
    await lockPair(tx, key)
    await syncDirectFlag(tx, key)
  }
  return removed.map((r) => r.id)
}

/** Those of `targets` who block `userId`. */
export async function blockersAmong(db: Db, userId: string, targets: string[]): Promise<Set<string>> {
  if (targets.length === 0) return new Set()
  const rows = await db
    .select({ id: userBlocks.blockerId })
    .from(userBlocks)
    .where(and(eq(userBlocks.blockedId, userId), inArray(userBlocks.blockerId, targets)))
  return new Set(rows.map((r) => r.id))
}

/** Everyone who blocks `userId` (at most `cap`): whose presence and typing their sockets drop. */
export async function blockersOf(db: Db, userId: string, cap = 10_000): Promise<string[]> {
  const rows = await db
    .select({ id: userBlocks.blockerId })
    .from(userBlocks)
    .where(eq(userBlocks.blockedId, userId))
    .limit(cap)
  return rows.map((r) => r.id)
}

export interface BlockEntry {
  userId: string
  fullName: string
  createdAt: Date
}

/** A page of the users `blockerId` blocks, newest first, after the (created_at, id) keyset. */
export async function listBlocks(
  db: Db,
  blockerId: string,
  after: { at: Date; id: string } | undefined,
  limit: number,
): Promise<BlockEntry[]> {
  return db
    .select({ userId: userBlocks.blockedId, fullName: users.fullName, createdAt: userBlocks.createdAt })
    .from(userBlocks)
    .innerJoin(users, eq(users.id, userBlocks.blockedId))
    .where(
      and(
        eq(userBlocks.blockerId, blockerId),
        after &&
          or(
            lt(userBlocks.createdAt, after.at),
            and(eq(userBlocks.createdAt, after.at), lt(userBlocks.blockedId, after.id)),
          ),
      ),
    )
    .orderBy(desc(userBlocks.createdAt), desc(userBlocks.blockedId))
    .limit(limit)
}
