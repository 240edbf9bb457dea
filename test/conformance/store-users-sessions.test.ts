import { randomBytes, randomUUID } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { describe, expect, it } from 'vitest'
import { ConflictError } from '../../src/errors.js'
import { newId } from '../../src/lib/ids.js'
import type { Db } from '../../src/store/db.js'
import { refreshTokens, users } from '../../src/store/schema.js'
import {
  insertSession,
  type NewSession,
  revokeAllSessions,
  revokeFamily,
  rotateSession,
  sessionFamily,
} from '../../src/store/sessions.js'
import {
  activeUserIds,
  findActiveUser,
  findActiveUserByEmail,
  insertUser,
  searchUsers,
  softDeleteUser,
  updateUser,
} from '../../src/store/users.js'
import { DRIVERS } from '../helpers/app.js'
import { makeUser, uniqueWord, useStore } from '../helpers/store.js'

/**
 * The accounts and refresh-token store on PostgreSQL and on PGlite: the same contracts on both,
 * since production runs either. Each test makes its own accounts (unique emails, and names carrying
 * a unique word so a search only finds that test's people).
 */

const HOUR = 3_600_000
const hash = () => randomBytes(16).toString('hex')

/** A refresh token of `userId` in `familyId` (a fresh family by default). */
const session = (userId: string, opts: Partial<NewSession> = {}): NewSession => ({
  id: newId(),
  userId,
  familyId: newId(),
  tokenHash: hash(),
  expiresAt: new Date(Date.now() + HOUR),
  ...opts,
})

/** Which of the user's tokens are revoked, by hash. */
async function revoked(db: Db, userId: string): Promise<Record<string, boolean>> {
  const rows = await db.select().from(refreshTokens).where(eq(refreshTokens.userId, userId))
  return Object.fromEntries(rows.map((r) => [r.tokenHash, r.revokedAt !== null]))
}

type Store = { readonly db: Db }

function usersContract(store: Store) {
  it('insertUser returns the stored row with its defaults', async () => {
    const email = `${uniqueWord()}@example.com`
    const id = newId()
    const row = await insertUser(store.db, { id, email, passwordHash: 'h', fullName: 'Ada Lovelace' })
    expect(row).toMatchObject({ id, email, passwordHash: 'h', fullName: 'Ada Lovelace', isActive: true })
    expect(row.role).toBe('user')
    expect(row.deletedAt).toBeNull()
    expect(row.createdAt).toBeInstanceOf(Date)
  })

  it('insertUser with a taken email is a ConflictError', async () => {
    const first = await makeUser(store.db)
    await expect(makeUser(store.db, 'Someone Else', first.email)).rejects.toBeInstanceOf(ConflictError)
  })

  it('findActiveUser and findActiveUserByEmail skip deactivated and soft-deleted accounts', async () => {
    const [live, off, gone] = [await makeUser(store.db), await makeUser(store.db), await makeUser(store.db)]
    await store.db.update(users).set({ isActive: false }).where(eq(users.id, off.id))
    await softDeleteUser(store.db, gone.id)
    expect((await findActiveUser(store.db, live.id))?.id).toBe(live.id)
    expect((await findActiveUserByEmail(store.db, live.email))?.id).toBe(live.id)
    expect(await findActiveUser(store.db, off.id)).toBeUndefined()
    expect(await findActiveUserByEmail(store.db, off.email)).toBeUndefined()
    expect(await findActiveUser(store.db, gone.id)).toBeUndefined()
    expect(await findActiveUserByEmail(store.db, gone.email)).toBeUndefined()
    expect(await activeUserIds(store.db, [live.id, off.id, gone.id, newId()])).toEqual(new Set([live.id]))
    expect(await activeUserIds(store.db, [])).toEqual(new Set())
  })

  it('searchUsers matches a name prefix on the first or a later word, case-insensitively', async () => {
    const w = uniqueWord()
    const first = await makeUser(store.db, `${w.toUpperCase()}ANNA Smith`)
    const later = await makeUser(store.db, `Bob ${w}annette`)
    await makeUser(store.db, `Carl x${w}anna`) // mid-word: not a prefix of any word
    await makeUser(store.db, `${w}bert`)
    const found = await searchUsers(store.db, {
      prefix: `${w}ann`,
      byEmail: false,
      afterId: undefined,
      limit: 10,
    })
    expect(found.map((u) => u.id).sort()).toEqual([first.id, later.id].sort())
  })

  it('searchUsers matches an email prefix only with byEmail', async () => {
    const w = uniqueWord()
    const byMail = await makeUser(store.db, 'Plain Name', `${w}.mail@example.com`)
    const q = { prefix: `${w}.mail`, afterId: undefined, limit: 10 }
    expect((await searchUsers(store.db, { ...q, byEmail: true })).map((u) => u.id)).toEqual([byMail.id])
    expect(await searchUsers(store.db, { ...q, byEmail: false })).toEqual([])
    // byEmail searches emails only: the name no longer counts.
    await makeUser(store.db, `${w}named`)
    expect(await searchUsers(store.db, { ...q, prefix: `${w}named`, byEmail: true })).toEqual([])
  })

  it('searchUsers matches %, _ and \\ in the prefix literally', async () => {
    const w = uniqueWord()
    const percent = await makeUser(store.db, `${w}50% off`)
    await makeUser(store.db, `${w}50x off`)
    const underscore = await makeUser(store.db, `${w}a_b`)
    await makeUser(store.db, `${w}axb`)
    const backslash = await makeUser(store.db, `${w}c\\d`)
    await makeUser(store.db, `${w}cd`)
    const search = (prefix: string, byEmail = false) =>
      searchUsers(store.db, { prefix, byEmail, afterId: undefined, limit: 10 }).then((r) =>
        r.map((u) => u.id),
      )
    expect(await search(`${w}50%`)).toEqual([percent.id])
    expect(await search(`${w}a_`)).toEqual([underscore.id])
    expect(await search(`${w}c\\`)).toEqual([backslash.id])
    const mail = await makeUser(store.db, 'Mail', `${w}_x@example.com`)
    await makeUser(store.db, 'Mail', `${w}yx@example.com`)
    expect(await search(`${w}_`, true)).toEqual([mail.id])
  })

  it('searchUsers orders by id, pages after afterId, stops at limit and skips inactive accounts', async () => {
    const w = uniqueWord()
    // Random (v4) ids, so id order is not creation order as it would be with v7 ids.
    const made: string[] = []
    for (let i = 0; i < 5; i++) {
      const id = randomUUID()
      await insertUser(store.db, {
        id,
        email: `${w}.${i}@example.com`,
        passwordHash: 'h',
        fullName: `${w} ${i}`,
      })
      made.push(id)
    }
    const [inactive] = made
    await store.db
      .update(users)
      .set({ isActive: false })
      .where(eq(users.id, inactive as string))
    const ids = made.filter((id) => id !== inactive).sort()
    const q = { prefix: w, byEmail: false, limit: 2 }
    const page1 = await searchUsers(store.db, { ...q, afterId: undefined })
    expect(page1.map((u) => u.id)).toEqual(ids.slice(0, 2))
    const page2 = await searchUsers(store.db, { ...q, afterId: page1.at(-1)?.id })
    expect(page2.map((u) => u.id)).toEqual(ids.slice(2, 4))
    expect(await searchUsers(store.db, { ...q, afterId: page2.at(-1)?.id })).toEqual([])
  })

  it('updateUser applies changes and a new password hash revokes every session in the same call', async () => {
    const u = await makeUser(store.db)
    const a = session(u.id)
    const b = session(u.id)
    await insertSession(store.db, a)
    await insertSession(store.db, b)
    const renamed = await updateUser(store.db, u.id, { fullName: 'New Name' })
    expect(renamed.fullName).toBe('New Name')
    expect(renamed.updatedAt.getTime()).toBeGreaterThanOrEqual(u.updatedAt.getTime())
    expect(await revoked(store.db, u.id)).toEqual({ [a.tokenHash]: false, [b.tokenHash]: false })
    const rehashed = await updateUser(store.db, u.id, { passwordHash: 'new-hash' })
    expect(rehashed.passwordHash).toBe('new-hash')
    expect(await revoked(store.db, u.id)).toEqual({ [a.tokenHash]: true, [b.tokenHash]: true })
  })

  it('updateUser to a taken email is a ConflictError and changes nothing', async () => {
    const [u, other] = [await makeUser(store.db), await makeUser(store.db)]
    await expect(updateUser(store.db, u.id, { email: other.email, fullName: 'X' })).rejects.toBeInstanceOf(
      ConflictError,
    )
    expect(await findActiveUser(store.db, u.id)).toMatchObject({ email: u.email, fullName: u.fullName })
  })

  it('softDeleteUser frees the email, blanks the account and revokes its sessions', async () => {
    const u = await makeUser(store.db, 'Leaving Soon')
    const s = session(u.id)
    await insertSession(store.db, s)
    await softDeleteUser(store.db, u.id)
    const [row] = await store.db.select().from(users).where(eq(users.id, u.id))
    expect(row).toMatchObject({ isActive: false, fullName: 'Deleted user' })
    expect(row?.deletedAt).toBeInstanceOf(Date)
    expect(row?.email).not.toBe(u.email)
    expect(await revoked(store.db, u.id)).toEqual({ [s.tokenHash]: true })
    const again = await makeUser(store.db, 'Came Back', u.email)
    expect(again.email).toBe(u.email)
  })
}

function sessionsContract(store: Store) {
  it('rotateSession spends the token, stores the successor in the family and returns the owner', async () => {
    const u = await makeUser(store.db)
    const first = session(u.id)
    await insertSession(store.db, first)
    const next = hash()
    const seen: unknown[] = []
    const result = await rotateSession(store.db, first.tokenHash, (row) => {
      seen.push(row)
      return session(row.userId, { familyId: row.familyId, tokenHash: next })
    })
    expect(result).toEqual({ ok: true, userId: u.id, familyId: first.familyId })
    expect(seen).toEqual([{ userId: u.id, familyId: first.familyId }])
    expect(await sessionFamily(store.db, next)).toBe(first.familyId)
    const [spent] = await store.db.select().from(refreshTokens).where(eq(refreshTokens.id, first.id))
    expect(spent?.usedAt).toBeInstanceOf(Date)
    expect(spent?.revokedAt).toBeNull()
    // The successor rotates in turn.
    expect((await rotateSession(store.db, next, (r) => session(r.userId, r))).ok).toBe(true)
  })

  it('a second rotation of the same token is reuse and revokes the whole family, successor included', async () => {
    const u = await makeUser(store.db)
    const first = session(u.id)
    const otherFamily = session(u.id)
    await insertSession(store.db, first)
    await insertSession(store.db, otherFamily)
    const next = hash()
    await rotateSession(store.db, first.tokenHash, (r) => session(r.userId, { ...r, tokenHash: next }))
    const again = await rotateSession(store.db, first.tokenHash, (r) => session(r.userId, r))
    expect(again).toEqual({ ok: false, reused: true })
    expect(await revoked(store.db, u.id)).toEqual({
      [first.tokenHash]: true,
      [next]: true,
      [otherFamily.tokenHash]: false,
    })
    expect((await rotateSession(store.db, next, (r) => session(r.userId, r))).ok).toBe(false)
  })

  it('a token of a family with any revoked token does not rotate, and the rest of the family is revoked', async () => {
    const u = await makeUser(store.db)
    const familyId = newId()
    const live = session(u.id, { familyId })
    const dead = session(u.id, { familyId })
    await insertSession(store.db, live)
    await insertSession(store.db, dead)
    await store.db.update(refreshTokens).set({ revokedAt: new Date() }).where(eq(refreshTokens.id, dead.id))
    const made: unknown[] = []
    const result = await rotateSession(store.db, live.tokenHash, (r) => {
      made.push(r)
      return session(r.userId, r)
    })
    expect(result).toEqual({ ok: false, reused: true })
    expect(made).toEqual([])
    expect(await revoked(store.db, u.id)).toEqual({ [live.tokenHash]: true, [dead.tokenHash]: true })
    // The revoked token itself is refused without counting as reuse.
    expect(await rotateSession(store.db, dead.tokenHash, (r) => session(r.userId, r))).toEqual({
      ok: false,
      reused: false,
    })
  })

  it('an expired or unknown token does not rotate and leaves the family alone', async () => {
    const u = await makeUser(store.db)
    const familyId = newId()
    const expired = session(u.id, { familyId, expiresAt: new Date(Date.now() - 1000) })
    const sibling = session(u.id, { familyId })
    await insertSession(store.db, expired)
    await insertSession(store.db, sibling)
    const refuse = { ok: false, reused: false }
    expect(await rotateSession(store.db, expired.tokenHash, (r) => session(r.userId, r))).toEqual(refuse)
    expect(await rotateSession(store.db, hash(), (r) => session(r.userId, r))).toEqual(refuse)
    expect(await revoked(store.db, u.id)).toEqual({ [expired.tokenHash]: false, [sibling.tokenHash]: false })
  })

  it('the token of a deactivated or deleted owner does not rotate', async () => {
    const [off, gone] = [await makeUser(store.db), await makeUser(store.db)]
    const a = session(off.id)
    const b = session(gone.id)
    await insertSession(store.db, a)
    await insertSession(store.db, b)
    await store.db.update(users).set({ isActive: false }).where(eq(users.id, off.id))
    // A deleted account whose sessions were somehow left unrevoked still cannot rotate.
    await store.db.update(users).set({ deletedAt: new Date() }).where(eq(users.id, gone.id))
    const refuse = { ok: false, reused: false }
    expect(await rotateSession(store.db, a.tokenHash, (r) => session(r.userId, r))).toEqual(refuse)
    expect(await rotateSession(store.db, b.tokenHash, (r) => session(r.userId, r))).toEqual(refuse)
  })

  it('two concurrent rotations of one token: one wins, the other is reuse and the family dies', async () => {
    const u = await makeUser(store.db)
    const first = session(u.id)
    await insertSession(store.db, first)
    const [h1, h2] = [hash(), hash()]
    // On PostgreSQL the second waits on the token's row lock; PGlite runs them one after the other.
    const results = await Promise.all(
      [h1, h2].map((next) =>
        rotateSession(store.db, first.tokenHash, (r) => session(r.userId, { ...r, tokenHash: next })),
      ),
    )
    expect(results.filter((r) => r.ok)).toEqual([{ ok: true, userId: u.id, familyId: first.familyId }])
    expect(results.filter((r) => !r.ok)).toEqual([{ ok: false, reused: true }])
    // Only the winner's successor exists, and it is revoked with the rest of the family.
    expect(Object.values(await revoked(store.db, u.id))).toEqual([true, true])
  })

  it('sessionFamily finds any token, revokeFamily revokes only that family', async () => {
    const u = await makeUser(store.db)
    const familyId = newId()
    const [a, b, c] = [session(u.id, { familyId }), session(u.id, { familyId }), session(u.id)]
    for (const s of [a, b, c]) await insertSession(store.db, s)
    expect(await sessionFamily(store.db, a.tokenHash)).toBe(familyId)
    expect(await sessionFamily(store.db, hash())).toBeUndefined()
    await revokeFamily(store.db, familyId)
    expect(await revoked(store.db, u.id)).toEqual({
      [a.tokenHash]: true,
      [b.tokenHash]: true,
      [c.tokenHash]: false,
    })
    // Still found once revoked: logout of a spent token must still find what to revoke.
    expect(await sessionFamily(store.db, b.tokenHash)).toBe(familyId)
  })

  it('revokeAllSessions revokes every family of that user and no one else', async () => {
    const [u, other] = [await makeUser(store.db), await makeUser(store.db)]
    const [a, b, c] = [session(u.id), session(u.id), session(other.id)]
    for (const s of [a, b, c]) await insertSession(store.db, s)
    await revokeAllSessions(store.db, u.id)
    expect(await revoked(store.db, u.id)).toEqual({ [a.tokenHash]: true, [b.tokenHash]: true })
    expect(await revoked(store.db, other.id)).toEqual({ [c.tokenHash]: false })
  })
}

describe.each(DRIVERS)('store on %s', (driver) => {
  const store = useStore(driver)
  describe('users', () => usersContract(store))
  describe('sessions', () => sessionsContract(store))
})
