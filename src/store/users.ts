import { and, asc, eq, gt, inArray, isNotNull, isNull, like, or, type SQL, sql } from 'drizzle-orm'
import { ConflictError } from '../errors.js'
import { deleteBlocksBy } from './blocks.js'
import type { Db } from './db.js'
import { isUniqueViolation } from './pg-errors.js'
import { type UserRow, users } from './schema.js'
import { revokeAllSessions } from './sessions.js'

const active = and(eq(users.isActive, true), isNull(users.deletedAt))
const emailTaken = () => new ConflictError('an account with this email already exists')

/** Inserts an account; a taken email is a ConflictError. */
export async function insertUser(
  db: Db,
  values: { id: string; email: string; passwordHash: string; fullName: string },
): Promise<UserRow> {
  try {
    const [row] = await db.insert(users).values(values).returning()
    return row as UserRow
  } catch (err) {
    if (isUniqueViolation(err)) throw emailTaken()
    throw err
  }
}

/** The account if it exists and can sign in (not deleted or deactivated). */
export async function findActiveUser(db: Db, id: string): Promise<UserRow | undefined> {
  const [row] = await db
    .select()
    .from(users)
    .where(and(eq(users.id, id), active))
  return row
}

export async function findActiveUserByEmail(db: Db, email: string): Promise<UserRow | undefined> {
  const [row] = await db
    .select()
    .from(users)
    .where(and(eq(users.email, email), active))
  return row
}

/** The ids among `ids` that belong to active accounts. */
export async function activeUserIds(db: Db, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set()
  const rows = await db
    .select({ id: users.id })
    .from(users)
    .where(and(inArray(users.id, ids), active))
  return new Set(rows.map((r) => r.id))
}

/**
 * Active accounts whose name (or, with `byEmail`, email) starts with `prefix`, ordered by id
 * after `afterId`. `prefix` is lower-case; LIKE wildcards in it are escaped here.
 */
export async function searchUsers(
  db: Db,
  q: { prefix: string; byEmail: boolean; afterId: string | undefined; limit: number },
): Promise<UserRow[]> {
  const pattern = `${q.prefix.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
  const name = sql`lower(${users.fullName})`
  let match: SQL | undefined
  if (q.prefix !== '') {
    match = q.byEmail ? like(users.email, pattern) : or(like(name, pattern), like(name, `% ${pattern}`))
  }
  return db
    .select()
    .from(users)
    .where(and(active, match, q.afterId === undefined ? undefined : gt(users.id, q.afterId)))
    .orderBy(asc(users.id))
    .limit(q.limit)
}

export type UserChanges = Partial<Pick<UserRow, 'fullName' | 'email' | 'passwordHash'>>

/** Applies `changes`; a password change ends every session of the account in the same transaction. */
export async function updateUser(db: Db, id: string, changes: UserChanges): Promise<UserRow> {
  try {
    return await db.transaction(async (tx) => {
      const [row] = await tx
        .update(users)
        .set({ ...changes, updatedAt: new Date() })
        .where(eq(users.id, id))
        .returning()
      if (changes.passwordHash !== undefined) await revokeAllSessions(tx, id)
      return row as UserRow
    })
  } catch (err) {
    if (isUniqueViolation(err)) throw emailTaken()
    throw err
  }
}

/**
 * Soft delete: the row stays so messages keep their sender, but it can no longer sign in, its
 * email is freed, its name is blanked, every session ends and the blocks it made are removed
 * (docs/moderation.md lists what is kept and why).
 */
export async function softDeleteUser(db: Db, id: string): Promise<void> {
  await db.transaction(async (tx) => {
    const now = new Date()
    await tx
      .update(users)
      .set({
        isActive: false,
        deletedAt: now,
        email: `deleted+${id}@invalid`,
        fullName: 'Deleted user',
        passwordHash: '!',
        updatedAt: now,
      })
      .where(eq(users.id, id))
    await revokeAllSessions(tx, id)
    await deleteBlocksBy(tx, id)
  })
}

/**
 * Sets or clears the suspension of an account that is not deleted; suspending also ends every
 * session (refresh token). Run in the moderation action's transaction. Undefined: no such account.
 */
export async function setSuspended(db: Db, id: string, suspended: boolean): Promise<UserRow | undefined> {
  const now = new Date()
  const [row] = await db
    .update(users)
    .set({ suspendedAt: suspended ? now : null, updatedAt: now })
    .where(and(eq(users.id, id), isNull(users.deletedAt)))
    .returning()
  if (row && suspended) await revokeAllSessions(db, id)
  return row
}

/**
 * Accounts for operators: not deleted, `query` (lower-case) found anywhere in the name or email,
 * suspended or not when asked, ordered by id after `afterId`.
 */
export async function listUsersForOperators(
  db: Db,
  q: { query: string; suspended: boolean | undefined; afterId: string | undefined; limit: number },
): Promise<UserRow[]> {
  const pattern = `%${q.query.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
  return db
    .select()
    .from(users)
    .where(
      and(
        isNull(users.deletedAt),
        q.query === ''
          ? undefined
          : or(like(sql`lower(${users.fullName})`, pattern), like(users.email, pattern)),
        q.suspended === undefined
          ? undefined
          : q.suspended
            ? isNotNull(users.suspendedAt)
            : isNull(users.suspendedAt),
        q.afterId === undefined ? undefined : gt(users.id, q.afterId),
      ),
    )
    .orderBy(asc(users.id))
    .limit(q.limit)
}
