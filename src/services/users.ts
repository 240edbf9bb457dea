import { and, asc, eq, gt, isNull, like, or, sql } from 'drizzle-orm'
import { burnVerify, hashPassword, passwordProblems, verifyPassword } from '../auth/passwords.js'
import type { Broker } from '../broker/broker.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import { isUuid, newId } from '../lib/ids.js'
import type { Db } from '../store/db.js'
import { isUniqueViolation } from '../store/pg-errors.js'
import { refreshTokens, type UserRow, users } from '../store/schema.js'
import { ConflictError, ForbiddenError, NotFoundError, UnauthorizedError, ValidationError } from './errors.js'
import { storableProblems } from './text.js'

/** What anyone signed in may see of a user. */
export interface PublicUser {
  id: string
  full_name: string
  created_at: string
}

/** What a user sees of themselves (and a superuser of anyone). */
export interface PrivateUser extends PublicUser {
  email: string
  is_active: boolean
  is_superuser: boolean
  updated_at: string
}

export const toPublicUser = (u: UserRow): PublicUser => ({
  id: u.id,
  full_name: u.fullName,
  created_at: u.createdAt.toISOString(),
})
export const toPrivateUser = (u: UserRow): PrivateUser => ({
  ...toPublicUser(u),
  email: u.email,
  is_active: u.isActive,
  is_superuser: u.isSuperuser,
  updated_at: u.updatedAt.toISOString(),
})

export const normalizeEmail = (email: string): string => email.trim().toLowerCase()

// Deliberately loose: the address is proven by use, not by a regex; this catches typos only.
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

export function emailProblems(email: string, path = '/body/email') {
  return EMAIL_RE.test(email) && email.length <= 254 && storableProblems(email, path).length === 0
    ? []
    : [{ path, message: 'must be a valid email address' }]
}

export interface UserPatch {
  full_name?: string | undefined
  email?: string | undefined
  password?: string | undefined
  current_password?: string | undefined
}

export class UserService {
  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
  ) {}

  async create(input: { email: string; password: string; fullName: string }): Promise<UserRow> {
    const email = normalizeEmail(input.email)
    const problems = [...emailProblems(email), ...passwordProblems(input.password)]
    if (input.fullName.trim() === '') problems.push({ path: '/body/full_name', message: 'must not be blank' })
    problems.push(...storableProblems(input.fullName, '/body/full_name'))
    if (problems.length > 0) throw new ValidationError(problems)
    const passwordHash = await hashPassword(input.password)
    try {
      const [row] = await this.db
        .insert(users)
        .values({ id: newId(), email, passwordHash, fullName: input.fullName.trim() })
        .returning()
      return row as UserRow
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError('an account with this email already exists')
      throw err
    }
  }

  /** Same answer and about the same time for an unknown email and a wrong password. */
  async checkCredentials(emailInput: string, password: string): Promise<UserRow> {
    const email = normalizeEmail(emailInput)
    // No account can have an address PostgreSQL cannot store: answer as for any unknown email.
    const row = storableProblems(email, '').length === 0 ? await this.findActiveByEmail(email) : undefined
    if (!row) {
      await burnVerify(password)
      throw new UnauthorizedError('incorrect email or password')
    }
    if (!(await verifyPassword(row.passwordHash, password)))
      throw new UnauthorizedError('incorrect email or password')
    return row
  }

  async findActiveByEmail(email: string): Promise<UserRow | undefined> {
    const [row] = await this.db
      .select()
      .from(users)
      .where(and(eq(users.email, email), eq(users.isActive, true), isNull(users.deletedAt)))
    return row
  }

  /** The user behind a token, or undefined when deleted or deactivated. */
  async findActive(id: string): Promise<UserRow | undefined> {
    const [row] = await this.db
      .select()
      .from(users)
      .where(and(eq(users.id, id), eq(users.isActive, true), isNull(users.deletedAt)))
    return row
  }

  async get(id: string): Promise<UserRow> {
    const row = await this.findActive(id)
    if (!row) throw new NotFoundError('user')
    return row
  }

  /**
   * Finds people by name prefix, or by email prefix when the query contains `@` (so emails
   * cannot be enumerated a letter at a time). Ordered by id; the cursor is the last id seen.
   */
  async search(query: string, limit: number, cursor: string | undefined) {
    const q = query.trim().toLowerCase()
    const unstorable = storableProblems(q, '/querystring/query')
    if (unstorable.length > 0) throw new ValidationError(unstorable)
    const after = cursor === undefined ? undefined : decodeUserCursor(cursor)
    const pattern = `${q.replace(/[\\%_]/g, (c) => `\\${c}`)}%`
    const match =
      q === ''
        ? undefined
        : q.includes('@')
          ? like(users.email, pattern)
          : or(
              like(sql`lower(${users.fullName})`, pattern),
              like(sql`lower(${users.fullName})`, `% ${pattern}`),
            )
    const rows = await this.db
      .select()
      .from(users)
      .where(
        and(
          eq(users.isActive, true),
          isNull(users.deletedAt),
          match,
          after === undefined ? undefined : gt(users.id, after),
        ),
      )
      .orderBy(asc(users.id))
      .limit(limit + 1)
    const page = rows.slice(0, limit)
    const last = page.at(-1)
    return {
      items: page.map(toPublicUser),
      next_cursor: rows.length > limit && last ? encodeCursor({ id: last.id }) : null,
    }
  }

  async update(actor: UserRow, targetId: string, patch: UserPatch): Promise<UserRow> {
    const target = actor.id === targetId ? actor : await this.targetFor(actor, targetId)
    const set: Partial<typeof users.$inferInsert> = { updatedAt: new Date() }
    const problems = []
    if (patch.full_name !== undefined) {
      if (patch.full_name.trim() === '')
        problems.push({ path: '/body/full_name', message: 'must not be blank' })
      problems.push(...storableProblems(patch.full_name, '/body/full_name'))
      set.fullName = patch.full_name.trim()
    }
    if (patch.email !== undefined) {
      set.email = normalizeEmail(patch.email)
      problems.push(...emailProblems(set.email))
    }
    if (patch.password !== undefined) problems.push(...passwordProblems(patch.password))
    if (problems.length > 0) throw new ValidationError(problems)
    const sensitive = patch.email !== undefined || patch.password !== undefined
    // A superuser skips the check for others only: their own account needs the password too.
    if (sensitive && (!actor.isSuperuser || actor.id === target.id)) {
      // Changing how one signs in requires proving one still can.
      const ok =
        patch.current_password !== undefined &&
        (await verifyPassword(target.passwordHash, patch.current_password))
      if (!ok) {
        throw new ValidationError([
          { path: '/body/current_password', message: 'is required and must be correct' },
        ])
      }
    }
    if (patch.password !== undefined) set.passwordHash = await hashPassword(patch.password)
    try {
      const [row] = await this.db.update(users).set(set).where(eq(users.id, target.id)).returning()
      if (patch.password !== undefined) await this.revokeAllSessions(target.id)
      return row as UserRow
    } catch (err) {
      if (isUniqueViolation(err)) throw new ConflictError('an account with this email already exists')
      throw err
    }
  }

  /**
   * Soft delete: the row stays so messages keep their sender, but it can no longer sign in,
   * its email is freed, its name is blanked and every session ends.
   */
  async delete(actor: UserRow, targetId: string, password: string | undefined): Promise<void> {
    const target = actor.id === targetId ? actor : await this.targetFor(actor, targetId)
    if (
      (!actor.isSuperuser || actor.id === target.id) &&
      !(password !== undefined && (await verifyPassword(target.passwordHash, password)))
    ) {
      throw new ValidationError([{ path: '/body/password', message: 'is required and must be correct' }])
    }
    await this.db.transaction(async (tx) => {
      await tx
        .update(users)
        .set({
          isActive: false,
          deletedAt: new Date(),
          email: `deleted+${target.id}@invalid`,
          fullName: 'Deleted user',
          passwordHash: '!',
          updatedAt: new Date(),
        })
        .where(eq(users.id, target.id))
      await tx.update(refreshTokens).set({ revokedAt: new Date() }).where(eq(refreshTokens.userId, target.id))
    })
    // Open sockets of the account close at once (4403), on every instance.
    this.broker.publish({ type: 'account.closed', user_id: target.id })
  }

  private async targetFor(actor: UserRow, targetId: string): Promise<UserRow> {
    const target = await this.get(targetId)
    if (!actor.isSuperuser) throw new ForbiddenError('only a superuser may change another user')
    return target
  }

  private async revokeAllSessions(userId: string): Promise<void> {
    await this.db
      .update(refreshTokens)
      .set({ revokedAt: new Date() })
      .where(and(eq(refreshTokens.userId, userId), isNull(refreshTokens.revokedAt)))
  }
}

/** The last id seen; anything else is a forged cursor, refused before it reaches the database. */
function decodeUserCursor(cursor: string): string {
  const { id } = decodeCursor(cursor, '/querystring/cursor')
  if (typeof id !== 'string' || !isUuid(id)) {
    throw new ValidationError([{ path: '/querystring/cursor', message: 'is not a valid cursor' }])
  }
  return id
}
