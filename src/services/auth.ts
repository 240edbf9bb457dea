import { createHash, randomBytes } from 'node:crypto'
import type { AccessTokens } from '../auth/jwt.js'
import { AccountSuspendedError, UnauthorizedError } from '../errors.js'
import { newId } from '../lib/ids.js'
import type { Db } from '../store/db.js'
import type { UserRow } from '../store/schema.js'
import * as sessions from '../store/sessions.js'
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
    return { user, tokens: await this.startSession(user.id) }
  }

  async login(email: string, password: string): Promise<TokenPair> {
    const user = await this.users.checkCredentials(email, password)
    return this.startSession(user.id)
  }

  async refresh(refreshToken: string): Promise<TokenPair> {
    const next = this.newRefreshToken()
    const rotation = await sessions.rotateSession(this.db, sha256(refreshToken), (old) =>
      next.session(old.userId, old.familyId),
    )
    if (!rotation.ok && rotation.suspended) throw new AccountSuspendedError()
    if (!rotation.ok) throw new UnauthorizedError('invalid refresh token')
    return this.pair(rotation.userId, next.token)
  }

  /** Revokes the token's family; an unknown token is not an error (logout is idempotent). */
  async logout(refreshToken: string): Promise<void> {
    const familyId = await sessions.sessionFamily(this.db, sha256(refreshToken))
    if (familyId !== undefined) await sessions.revokeFamily(this.db, familyId)
  }

  /**
   * The active user an access token belongs to; a deleted or deactivated user's token is refused,
   * and a suspended user's too (read on every request, so a suspension stops tokens at once).
   */
  async authenticate(accessToken: string): Promise<{ user: UserRow; exp: number }> {
    const claims = await this.tokens.verify(accessToken)
    const user = await this.users.findSignedIn(claims.sub)
    if (!user) throw new UnauthorizedError('account is deleted or deactivated')
    return { user, exp: claims.exp }
  }

  /** A new login: a new token family. */
  private async startSession(userId: string): Promise<TokenPair> {
    const next = this.newRefreshToken()
    await sessions.insertSession(this.db, next.session(userId, newId()))
    return this.pair(userId, next.token)
  }

  private newRefreshToken() {
    const token = randomBytes(32).toString('base64url')
    const session = (userId: string, familyId: string): sessions.NewSession => ({
      id: newId(),
      userId,
      familyId,
      tokenHash: sha256(token),
      expiresAt: new Date(Date.now() + this.refreshTtlSec * 1000),
    })
    return { token, session }
  }

  private async pair(userId: string, refreshToken: string): Promise<TokenPair> {
    return {
      access_token: await this.tokens.sign(userId),
      token_type: 'bearer',
      refresh_token: refreshToken,
      expires_in: this.tokens.ttlSec,
    }
  }
}
