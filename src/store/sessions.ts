import { and, eq, isNull } from 'drizzle-orm'
import type { Db } from './db.js'
import { refreshTokens } from './schema.js'

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

export type Rotation = { ok: true; userId: string; familyId: string } | { ok: false; reused: boolean }

/**
 * Spends the refresh token with hash `tokenHash` and stores its successor, in one transaction under
 * the old row's lock. A token that was already spent means it leaked: its whole family is revoked.
 * Because the successor is written before the lock is released, a concurrent reuse that waited on
 * the lock finds it and revokes it too (RFC 9700 §4.14.2), whatever the interleaving.
 */
export async function rotateSession(
  db: Db,
  tokenHash: string,
  successor: (row: { userId: string; familyId: string }) => NewSession,
): Promise<Rotation> {
  return db.transaction(async (tx): Promise<Rotation> => {
    const now = new Date()
    const [row] = await tx
      .select()
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, tokenHash))
      .for('update')
    if (!row || row.revokedAt || row.expiresAt <= now) return { ok: false, reused: false }
    if (row.usedAt) {
      await revokeFamily(tx, row.familyId)
      return { ok: false, reused: true }
    }
    await tx.update(refreshTokens).set({ usedAt: now }).where(eq(refreshTokens.id, row.id))
    await insertSession(tx, successor({ userId: row.userId, familyId: row.familyId }))
    return { ok: true, userId: row.userId, familyId: row.familyId }
  })
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
