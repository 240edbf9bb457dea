import { and, desc, eq, lt, or, sql } from 'drizzle-orm'
import { NotFoundError } from '../errors.js'
import type { Db } from './db.js'
import { insertMembers, type Role } from './members.js'
import { isUniqueViolation } from './pg-errors.js'
import { type ConversationRow, conversations, conversationMembers as members } from './schema.js'

export async function findConversation(db: Db, id: string): Promise<ConversationRow | undefined> {
  const [row] = await db.select().from(conversations).where(eq(conversations.id, id))
  return row
}

export async function findDirect(db: Db, directKey: string): Promise<ConversationRow | undefined> {
  const [row] = await db.select().from(conversations).where(eq(conversations.directKey, directKey))
  return row
}

/**
 * Creates a conversation with its first members in one transaction. Returns false when a
 * direct conversation with the same `directKey` already exists (a concurrent create won).
 * `guard` runs first in the transaction and may throw to refuse the creation.
 */
export async function insertConversation(
  db: Db,
  row: { id: string; kind: 'direct' | 'group'; title?: string; directKey?: string; createdBy: string },
  initial: { userId: string; role: Role }[],
  guard?: (tx: Db) => Promise<void>,
): Promise<boolean> {
  try {
    await db.transaction(async (tx) => {
      await guard?.(tx)
      await tx.insert(conversations).values(row)
      await insertMembers(tx, row.id, initial)
    })
    return true
  } catch (err) {
    if (row.directKey !== undefined && isUniqueViolation(err)) return false
    throw err
  }
}

export async function setTitle(db: Db, id: string, title: string): Promise<void> {
  await db.update(conversations).set({ title, updatedAt: new Date() }).where(eq(conversations.id, id))
}

/** Where a conversation stands: its last seq and membership version. */
export interface Position {
  seq: number
  membersVersion: number
}

/**
 * The one conversation lock: takes the conversation row's lock for the rest of the transaction,
 * which orders a membership change against concurrent sends (the group-commit writer takes the
 * same lock), and returns where the conversation stands. A removal bumps the membership version
 * (see `conversations.membersVersion`).
 */
export async function lockConversation(
  tx: Db,
  conversationId: string,
  opts: { removal?: boolean } = {},
): Promise<Position> {
  const [row] = await tx
    .update(conversations)
    .set({
      updatedAt: new Date(),
      ...(opts.removal ? { membersVersion: sql`${conversations.membersVersion} + 1` } : {}),
    })
    .where(eq(conversations.id, conversationId))
    .returning({ seq: conversations.lastSeq, membersVersion: conversations.membersVersion })
  if (!row) throw new NotFoundError('conversation')
  return row
}

/** Where a socket starts following a conversation (0/0 when it does not exist). */
export async function position(db: Db, conversationId: string): Promise<Position> {
  const [row] = await db
    .select({ seq: conversations.lastSeq, membersVersion: conversations.membersVersion })
    .from(conversations)
    .where(eq(conversations.id, conversationId))
  return row ?? { seq: 0, membersVersion: 0 }
}

/** A user's conversations with where each stands: what a user socket follows. */
export async function memberships(
  db: Db,
  userId: string,
): Promise<({ conversationId: string; joinedSeq: number; role: string } & Position)[]> {
  return db
    .select({
      conversationId: conversations.id,
      seq: conversations.lastSeq,
      membersVersion: conversations.membersVersion,
      joinedSeq: members.joinedSeq,
      role: members.role,
    })
    .from(members)
    .innerJoin(conversations, eq(conversations.id, members.conversationId))
    .where(eq(members.userId, userId))
}

/** A page of the user's conversations, most recent activity first, after the (activity, id) keyset. */
export async function conversationsOf(
  db: Db,
  userId: string,
  after: { at: Date; id: string } | undefined,
  limit: number,
): Promise<ConversationRow[]> {
  const rows = await db
    .select({ c: conversations })
    .from(members)
    .innerJoin(conversations, eq(conversations.id, members.conversationId))
    .where(
      and(
        eq(members.userId, userId),
        after &&
          or(
            lt(conversations.lastActivityAt, after.at),
            and(eq(conversations.lastActivityAt, after.at), lt(conversations.id, after.id)),
          ),
      ),
    )
    .orderBy(desc(conversations.lastActivityAt), desc(conversations.id))
    .limit(limit)
  return rows.map((r) => r.c)
}
