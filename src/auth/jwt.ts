import { randomUUID } from 'node:crypto'
import { errors as joseErrors, jwtVerify, SignJWT } from 'jose'
import { UnauthorizedError } from '../errors.js'

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
      return { sub: payload.sub as string, exp: payload.exp as number, jti: payload.jti as string }
    } catch (err) {
      if (err instanceof UnauthorizedError) throw err
      if (err instanceof joseErrors.JWTExpired) throw new UnauthorizedError('access token expired')
      throw new UnauthorizedError('invalid access token')
    }
  }
}
