import { createHash, randomBytes } from 'node:crypto'
import { and, eq, isNull } from 'drizzle-orm'
import type { AccessTokens } from '../auth/jwt.js'
import { newId } from '../lib/ids.js'
import type { Db } from '../store/db.js'
import { refreshTokens, type UserRow } from '../store/schema.js'
import { UnauthorizedError } from './errors.js'
import type { UserService } from './users.js'

export interface TokenPair {
  access_token: string
  token_type: 'bearer'
  refresh_token: string
  expires_in: number
}

const sha256 = (s: string): string => createHash('sha256').update(s).digest('base64url')

/**
 * Access tokens are short-lived JWTs; refresh tokens are opaque random strings stored as a
 * SHA-256 hash, single use, rotated on every refresh. Presenting one that was already rotated
 * means it leaked: the whole family (every token descended from that login) is revoked.
 */
export class AuthService {
  constructor(
    private readonly db: Db,
    private readonly users: UserService,
    private readonly tokens: AccessTokens,
    private readonly refreshTtlSec: number,
  ) {}

  async register(input: { email: string; password: string; fullName: string }) {
    const user = await this.users.create(input)
    return { user, tokens: await this.issue(user.id, newId()) }
  }

  async login(email: string, password: string): Promise<TokenPair> {
    const user = await this.users.checkCredentials(email, password)
    return this.issue(user.id, newId())
  }

  async refresh(refreshToken: string): Promise<TokenPair> {
    const hash = sha256(refreshToken)
    const now = new Date()
    const result = await this.db.transaction(async (tx) => {
      const [row] = await tx
        .select()
        .from(refreshTokens)
        .where(eq(refreshTokens.tokenHash, hash))
        .for('update')
      if (!row || row.revokedAt || row.expiresAt <= now) return { ok: false as const }
      if (row.usedAt) {
        await tx
          .update(refreshTokens)
          .set({ revokedAt: now })
          .where(and(eq(refreshTokens.familyId, row.familyId), isNull(refreshTokens.revokedAt)))
        return { ok: false as const, reused: true }
      }
      await tx.update(refreshTokens).set({ usedAt: now }).where(eq(refreshTokens.id, row.id))
      return { ok: true as const, row }
    })
    if (!result.ok) throw new UnauthorizedError('invalid refresh token')
    const user = await this.users.findActive(result.row.userId)
    if (!user) throw new UnauthorizedError('invalid refresh token')
    return this.issue(user.id, result.row.familyId)
  }

  /** Revokes the token's family; an unknown token is not an error (logout is idempotent). */
  async logout(refreshToken: string): Promise<void> {
    const [row] = await this.db
      .select({ familyId: refreshTokens.familyId })
      .from(refreshTokens)
      .where(eq(refreshTokens.tokenHash, sha256(refreshToken)))
    if (!row) return
    await this.db
      .update(refreshTokens)
      .set({ revokedAt: new Date() })
      .where(and(eq(refreshTokens.familyId, row.familyId), isNull(refreshTokens.revokedAt)))
  }

  /** The active user an access token belongs to; a deleted or deactivated user's token is refused. */
  async authenticate(accessToken: string): Promise<{ user: UserRow; exp: number }> {
    const claims = await this.tokens.verify(accessToken)
    const user = await this.users.findActive(claims.sub)
    if (!user) throw new UnauthorizedError('account is deleted or deactivated')
    return { user, exp: claims.exp }
  }

  private async issue(userId: string, familyId: string): Promise<TokenPair> {
    const refresh = randomBytes(32).toString('base64url')
    await this.db.insert(refreshTokens).values({
      id: newId(),
      userId,
      familyId,
      tokenHash: sha256(refresh),
      expiresAt: new Date(Date.now() + this.refreshTtlSec * 1000),
    })
    return {
      access_token: await this.tokens.sign(userId),
      token_type: 'bearer',
      refresh_token: refresh,
      expires_in: this.tokens.ttlSec,
    }
  }
}
