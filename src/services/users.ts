import { burnVerify, hashPassword, passwordProblems, verifyPassword } from '../auth/passwords.js'
import {
  AccountSuspendedError,
  ForbiddenError,
  invalid,
  NotFoundError,
  UnauthorizedError,
  ValidationError,
} from '../errors.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import { isUuid, newId } from '../lib/ids.js'
import type { Db } from '../store/db.js'
import { deleteSubscriptionsOf } from '../store/push-subscriptions.js'
import { primaryReads, type Reads } from '../store/read-replica.js'
import type { UserRow } from '../store/schema.js'
import * as store from '../store/users.js'
import { Outbox } from './outbox.js'
import type { Broker } from './ports.js'
import { storableProblems } from './text.js'

/** An account as the services hand it to transports (the stored row; transports render views). */
export type User = UserRow

/** What anyone signed in may see of a user. */
export interface PublicUser {
  id: string
  full_name: string
  created_at: string
}

/** Operators moderate (the /api/v1/admin routes); `is_superuser` in views is this, kept for clients that read it. */
export const isOperator = (u: UserRow): boolean => u.role === 'operator'

/** What a user sees of themselves (and an operator of anyone). */
export interface PrivateUser extends PublicUser {
  email: string
  is_active: boolean
  is_superuser: boolean
  role: UserRow['role']
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
  is_superuser: isOperator(u),
  role: u.role,
  updated_at: u.updatedAt.toISOString(),
})

export const normalizeEmail = (email: string): string => email.trim().toLowerCase()

// Deliberately loose: the address is proven by use, not by a regex; this catches typos only.
const EMAIL_RE = /^[^\s@]+@[^\s@]+\.[^\s@]+$/

export function emailProblems(email: string, field = 'email') {
  return EMAIL_RE.test(email) && email.length <= 254 && storableProblems(email, field).length === 0
    ? []
    : [{ field, message: 'must be a valid email address' }]
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
    /** User search: a replica when one is configured (it serves only fresh reads). */
    private readonly reads: Reads = primaryReads(db),
    /** `user.deleted` goes out through it (none: recorded nowhere). */
    private readonly outbox: Outbox = new Outbox([]),
  ) {}

  async create(input: { email: string; password: string; fullName: string }): Promise<UserRow> {
    const email = normalizeEmail(input.email)
    const problems = [...emailProblems(email), ...passwordProblems(input.password)]
    if (input.fullName.trim() === '') problems.push({ field: 'full_name', message: 'must not be blank' })
    problems.push(...storableProblems(input.fullName, 'full_name'))
    if (problems.length > 0) throw new ValidationError(problems)
    const passwordHash = await hashPassword(input.password)
    return store.insertUser(this.db, { id: newId(), email, passwordHash, fullName: input.fullName.trim() })
  }

  /** Same answer and about the same time for an unknown email and a wrong password. */
  async checkCredentials(emailInput: string, password: string): Promise<UserRow> {
    const email = normalizeEmail(emailInput)
    // No account can have an address PostgreSQL cannot store: answer as for any unknown email.
    const row =
      storableProblems(email, '').length === 0 ? await store.findActiveUserByEmail(this.db, email) : undefined
    if (!row) {
      await burnVerify(password)
      throw new UnauthorizedError('incorrect email or password')
    }
    if (!(await verifyPassword(row.passwordHash, password)))
      throw new UnauthorizedError('incorrect email or password')
    // Told only to whoever knows the password: anyone else learns nothing of the suspension.
    if (row.suspendedAt) throw new AccountSuspendedError()
    return row
  }

  /** The user behind a token, or undefined when deleted or deactivated. */
  async findActive(id: string): Promise<UserRow | undefined> {
    return isUuid(id) ? store.findActiveUser(this.db, id) : undefined
  }

  /** The user behind a token or ticket: undefined when deleted or deactivated; suspended is refused. */
  async findSignedIn(id: string): Promise<UserRow | undefined> {
    const row = await this.findActive(id)
    if (row?.suspendedAt) throw new AccountSuspendedError()
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
    const unstorable = storableProblems(q, 'query')
    if (unstorable.length > 0) throw new ValidationError(unstorable)
    const afterId = cursor === undefined ? undefined : decodeUserCursor(cursor)
    const rows = await this.reads.fresh('users', (db) =>
      store.searchUsers(db, { prefix: q, byEmail: q.includes('@'), afterId, limit: limit + 1 }),
    )
    const page = rows.slice(0, limit)
    const last = page.at(-1)
    return {
      items: page.map(toPublicUser),
      next_cursor: rows.length > limit && last ? encodeCursor({ id: last.id }) : null,
    }
  }

  async update(actor: UserRow, targetId: string, patch: UserPatch): Promise<UserRow> {
    const target = actor.id === targetId ? actor : await this.targetFor(actor, targetId)
    const changes: store.UserChanges = {}
    const problems = []
    if (patch.full_name !== undefined) {
      if (patch.full_name.trim() === '') problems.push({ field: 'full_name', message: 'must not be blank' })
      problems.push(...storableProblems(patch.full_name, 'full_name'))
      changes.fullName = patch.full_name.trim()
    }
    if (patch.email !== undefined) {
      changes.email = normalizeEmail(patch.email)
      problems.push(...emailProblems(changes.email))
    }
    if (patch.password !== undefined) problems.push(...passwordProblems(patch.password))
    if (problems.length > 0) throw new ValidationError(problems)
    const sensitive = patch.email !== undefined || patch.password !== undefined
    // An operator skips the check for others only: their own account needs the password too.
    if (sensitive && (!isOperator(actor) || actor.id === target.id)) {
      // Changing how one signs in requires proving one still can.
      const ok =
        patch.current_password !== undefined &&
        (await verifyPassword(target.passwordHash, patch.current_password))
      if (!ok) throw invalid('current_password', 'is required and must be correct')
    }
    if (patch.password !== undefined) changes.passwordHash = await hashPassword(patch.password)
    return store.updateUser(this.db, target.id, changes)
  }

  /**
   * Soft delete: the row stays so messages keep their sender, but it can no longer sign in,
   * its email is freed, its name is blanked, every session ends and its push subscriptions go.
   */
  async delete(actor: UserRow, targetId: string, password: string | undefined): Promise<void> {
    const target = actor.id === targetId ? actor : await this.targetFor(actor, targetId)
    if (
      (!isOperator(actor) || actor.id === target.id) &&
      !(password !== undefined && (await verifyPassword(target.passwordHash, password)))
    ) {
      throw invalid('password', 'is required and must be correct')
    }
    await this.db.transaction(async (tx) => {
      await store.softDeleteUser(tx, target.id)
      // A browser must not keep receiving (or be counted for) an account that no longer exists.
      await deleteSubscriptionsOf(tx, target.id)
      await this.outbox.record(tx, [
        { type: 'user.deleted', conversationId: null, data: { user_id: target.id } },
      ])
    })
    this.outbox.committed()
    // Open sockets of the account close at once (4403), on every instance.
    this.broker.publish({ type: 'account.closed', user_id: target.id })
  }

  private async targetFor(actor: UserRow, targetId: string): Promise<UserRow> {
    const target = await this.get(targetId)
    if (!isOperator(actor)) throw new ForbiddenError('only an operator may change another user')
    return target
  }
}

/** The last id seen; anything else is a forged cursor, refused before it reaches the database. */
function decodeUserCursor(cursor: string): string {
  const { id } = decodeCursor(cursor)
  if (typeof id !== 'string' || !isUuid(id)) throw invalid('cursor', 'is not a valid cursor')
  return id
}
