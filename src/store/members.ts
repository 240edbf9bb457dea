import { and, asc, type Column, eq, inArray, ne, type SQL, sql } from 'drizzle-orm'
import type { Db } from './db.js'
import {
  conversationDepartures as departures,
  type MemberRow,
  conversationMembers as members,
  users,
} from './schema.js'

export type Role = MemberRow['role']

/** A member with the name shown next to them. */
export interface MemberWithName extends MemberRow {
  fullName: string
}

/**
 * `user_id` is a member of `conversation_id`: the one membership condition, used alone
 * (`findMember`) and inside other queries (history pages, resume reads) so they return nothing to
 * a non-member without a separate round trip.
 */
export const isMember = (conversationId: string, userId: string): SQL =>
  sql`exists (select 1 from ${members} where ${members.conversationId} = ${conversationId} and ${members.userId} = ${userId})`

/** The membership, or undefined when the user is not in the conversation (or it does not exist). */
export async function findMember(
  db: Db,
  conversationId: string,
  userId: string,
): Promise<MemberRow | undefined> {
  const [row] = await db
    .select()
    .from(members)
    .where(and(eq(members.conversationId, conversationId), eq(members.userId, userId)))
  return row
}

export async function countMembers(db: Db, conversationId: string): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(members)
    .where(eq(members.conversationId, conversationId))
  return row?.n ?? 0
}

/** Adds members; returns the ones that were not members already. */
export async function insertMembers(
  db: Db,
  conversationId: string,
  added: { userId: string; role: Role; joinedSeq?: number }[],
): Promise<MemberRow[]> {
  if (added.length === 0) return []
  return db
    .insert(members)
    .values(
      added.map((m) => ({ conversationId, userId: m.userId, role: m.role, joinedSeq: m.joinedSeq ?? 0 })),
    )
    .onConflictDoNothing()
    .returning()
}

export async function deleteMember(
  db: Db,
  conversationId: string,
  userId: string,
): Promise<MemberRow | undefined> {
  const [row] = await db
    .delete(members)
    .where(and(eq(members.conversationId, conversationId), eq(members.userId, userId)))
    .returning()
  return row
}

/** Sets a member's role unless they are the owner; undefined when no such non-owner member. */
export async function setMemberRole(
  db: Db,
  conversationId: string,
  userId: string,
  role: Role,
): Promise<MemberRow | undefined> {
  const [row] = await db
    .update(members)
    .set({ role })
    .where(
      and(eq(members.conversationId, conversationId), eq(members.userId, userId), ne(members.role, 'owner')),
    )
    .returning()
  return row
}

/** Sets (or clears, with null) how long the member has muted the conversation; undefined when not a member. */
export async function setMutedUntil(
  db: Db,
  conversationId: string,
  userId: string,
  until: Date | null,
): Promise<MemberRow | undefined> {
  const [row] = await db
    .update(members)
    .set({ mutedUntil: until })
    .where(and(eq(members.conversationId, conversationId), eq(members.userId, userId)))
    .returning()
  return row
}

/** The longest-serving admin becomes owner, else the longest-serving member. */
export async function handOwnershipOn(db: Db, conversationId: string): Promise<void> {
  const [heir] = await db
    .select()
    .from(members)
    .where(eq(members.conversationId, conversationId))
    .orderBy(
      sql`case when ${members.role} = 'admin' then 0 else 1 end`,
      asc(members.joinedAt),
      // Members added together share joined_at; the id makes the choice deterministic.
      asc(members.userId),
    )
    .limit(1)
  if (!heir) return
  await db
    .update(members)
    .set({ role: 'owner' })
    .where(and(eq(members.conversationId, conversationId), eq(members.userId, heir.userId)))
}

/** The members of the given conversations (or only `userId` in them) with their names, in joining order. */
export async function membersOf(
  db: Db,
  conversationIds: string[],
  userId?: string,
): Promise<MemberWithName[]> {
  if (conversationIds.length === 0) return []
  const rows = await db
    .select({ m: members, name: users.fullName })
    .from(members)
    .innerJoin(users, eq(users.id, members.userId))
    .where(
      and(
        inArray(members.conversationId, conversationIds),
        userId === undefined ? undefined : eq(members.userId, userId),
      ),
    )
    .orderBy(asc(members.joinedAt), asc(members.userId))
  return rows.map((r) => ({ ...r.m, fullName: r.name }))
}

/** Distinct people sharing a conversation with the user (or in the one given), at most `cap`. */
export async function peersOf(
  db: Db,
  userId: string,
  conversationId: string | undefined,
  cap: number,
): Promise<string[]> {
  const mine = db.select({ id: members.conversationId }).from(members).where(eq(members.userId, userId))
  const rows = await db
    .selectDistinct({ id: members.userId })
    .from(members)
    .where(
      and(
        conversationId ? eq(members.conversationId, conversationId) : inArray(members.conversationId, mine),
        ne(members.userId, userId),
      ),
    )
    .limit(cap)
  return rows.map((r) => r.id)
}

/** Where a removed member stopped (see `conversation_departures`). */
export interface Departure {
  seq: number
  membersVersion: number
}

/** Records (or moves) where a removed member stopped; run in the removal's transaction. */
export async function recordDeparture(
  db: Db,
  conversationId: string,
  userId: string,
  at: Departure,
): Promise<void> {
  const values = { lastSeq: at.seq, membersVersion: at.membersVersion, leftAt: new Date() }
  await db
    .insert(departures)
    .values({ conversationId, userId, ...values })
    .onConflictDoUpdate({ target: [departures.conversationId, departures.userId], set: values })
}

export async function findDeparture(
  db: Db,
  conversationId: string,
  userId: string,
): Promise<Departure | undefined> {
  const [row] = await db
    .select({ seq: departures.lastSeq, membersVersion: departures.membersVersion })
    .from(departures)
    .where(and(eq(departures.conversationId, conversationId), eq(departures.userId, userId)))
  return row
}

/**
 * The message with `seq` reached `userId` as a member: they are one now, or they were removed
 * after it (a socket still delivering what was committed before the removal).
 */
export const wasMemberAt = (conversationId: string, userId: string, seq: SQL | Column): SQL =>
  sql`(${isMember(conversationId, userId)} or exists (select 1 from ${departures} where ${departures.conversationId} = ${conversationId} and ${departures.userId} = ${userId} and ${departures.lastSeq} >= ${seq}))`
