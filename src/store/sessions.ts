import { and, eq, isNotNull, isNull, sql } from 'drizzle-orm'
import type { Db } from './db.js'
import { refreshTokens, users } from './schema.js'

/** A refresh token as stored: only its SHA-256 hash, never the token. */
export interface NewSession {
  id: string
  userId: string
  familyId: string
  tokenHash: string
  expiresAt: Date
}

export async function insertSession(db: Db, session: NewSession): Promise<void> {
  await db.insert(refreshTokens).values(session)
}

export type Rotation =
  | { ok: true; userId: string; familyId: string }
  /** `suspended`: the owner's account is suspended (its tokens were revoked with the suspension). */
  | { ok: false; reused: boolean; suspended?: boolean }

/**
 * Spends the refresh token with hash `tokenHash` and stores its successor, in one transaction under
 * the old row's lock, so a concurrent presentation of the same token waits, finds it spent, and
 * revokes the family successor included (RFC 9700 §4.14.2). A revocation that was already running
 * when the successor was inserted cannot see it (the row is not in its snapshot) but always revokes
 * an older token of the family: so a family with any revoked token is dead, and presenting one of
 * its tokens revokes the rest. The owner's state is read in the same locking statement (on PGlite
 * nothing else can run inside the transaction).
 */
export async function rotateSession(
  db: Db,
  tokenHash: string,
  successor: (row: { userId: string; familyId: string }) => NewSession,
): Promise<Rotation> {
  return db.transaction(async (tx): Promise<Rotation> => {
    const now = new Date()
    const [found] = await tx
      .select({
        token: refreshTokens,
        ownerActive: sql<boolean>`(${users.isActive} and ${users.deletedAt} is null)`,
        ownerSuspended: sql<boolean>`(${users.suspendedAt} is not null)`,
      })
      .from(refreshTokens)
      .innerJoin(users, eq(users.id, refreshTokens.userId))
      .where(eq(refreshTokens.tokenHash, tokenHash))
      .for('update', { of: refreshTokens })
    if (!found) return { ok: false, reused: false }
    const { token, ownerActive, ownerSuspended } = found
    if (ownerActive && ownerSuspended) return { ok: false, reused: false, suspended: true }
    if (token.revokedAt || token.expiresAt <= now || !ownerActive) return { ok: false, reused: false }
    if (token.usedAt || (await familyRevoked(tx, token.familyId))) {
      await revokeFamily(tx, token.familyId)
      return { ok: false, reused: true }
    }
    await tx.update(refreshTokens).set({ usedAt: now }).where(eq(refreshTokens.id, token.id))
    await insertSession(tx, successor({ userId: token.userId, familyId: token.familyId }))
    return { ok: true, userId: token.userId, familyId: token.familyId }
  })
}

async function familyRevoked(tx: Db, familyId: string): Promise<boolean> {
  const [row] = await tx
    .select({ id: refreshTokens.id })
    .from(refreshTokens)
    .where(and(eq(refreshTokens.familyId, familyId), isNotNull(refreshTokens.revokedAt)))
    .limit(1)
  return row !== undefined
}

/** The family a token belongs to, whatever its state. */
export async function sessionFamily(db: Db, tokenHash: string): Promise<string | undefined> {
  const [row] = await db
    .select({ familyId: refreshTokens.familyId })
    .from(refreshTokens)
    .where(eq(refreshTokens.tokenHash, tokenHash))
  return row?.familyId
}

export async function revokeFamily(db: Db, familyId: string): Promise<void> {
  await db
    .update(refreshTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(refreshTokens.familyId, familyId), isNull(refreshTokens.revokedAt)))
}

export async function revokeAllSessions(db: Db, userId: string): Promise<void> {
  await db
    .update(refreshTokens)
    .set({ revokedAt: new Date() })
    .where(and(eq(refreshTokens.userId, userId), isNull(refreshTokens.revokedAt)))
}
