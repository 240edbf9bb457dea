import { randomUUID } from 'node:crypto'
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose'
import { UnauthorizedError } from '../errors.js'
import { isUuid } from '../lib/ids.js'

export interface JwtSettings {
  secret: string
  issuer: string
  audience: string
  accessTtlSec: number
}

export interface AccessClaims {
  sub: string
  exp: number
  jti: string
}

const ALG = 'HS256'

/** Signs and verifies access tokens. The algorithm is pinned: `none` and RS/HS confusion are refused. */
export class AccessTokens {
  private readonly key: Uint8Array
  constructor(private readonly settings: JwtSettings) {
    this.key = new TextEncoder().encode(settings.secret)
  }

  get ttlSec(): number {
    return this.settings.accessTtlSec
  }

  async sign(userId: string): Promise<string> {
    return new SignJWT({ typ: 'access' })
      .setProtectedHeader({ alg: ALG, typ: 'JWT' })
      .setSubject(userId)
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setIssuedAt()
      .setExpirationTime(`${this.settings.accessTtlSec}s`)
      .setJti(randomUUID())
      .sign(this.key)
  }

  async verify(token: string): Promise<AccessClaims> {
    try {
      const { payload } = await jwtVerify(token, this.key, {
        algorithms: [ALG],
        issuer: this.settings.issuer,
        audience: this.settings.audience,
        requiredClaims: ['sub', 'exp', 'iat', 'jti'],
        // Also refuses an iat in the future and a token older than the TTL, whatever its exp says.
        maxTokenAge: this.settings.accessTtlSec,
        clockTolerance: 5,
      })
      if (payload.typ !== 'access') throw new UnauthorizedError('not an access token')
      // jose checks that these claims are present, not their shape; a well-signed token with a
      // sub that is no user id would otherwise reach the database as one (and fail there, 500).
      const { sub, exp, jti } = payload
      if (typeof sub !== 'string' || !isUuid(sub) || typeof jti !== 'string' || typeof exp !== 'number') {
        throw new UnauthorizedError('invalid access token')
      }
      return { sub, exp, jti }
    } catch (err) {
      if (err instanceof UnauthorizedError) throw err
      if (err instanceof joseErrors.JWTExpired) throw new UnauthorizedError('access token expired')
      throw new UnauthorizedError('invalid access token')
    }
  }
}
