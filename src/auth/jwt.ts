import { createHmac, randomUUID } from 'node:crypto'
import { type JWTHeaderParameters, errors as joseErrors, jwtVerify, SignJWT } from 'jose'
import { UnauthorizedError } from '../errors.js'
import { isUuid } from '../lib/ids.js'

/**
 * Signing secrets, newest first: the first signs, every one verifies. Either given (JWT_SECRET)
 * or loaded once when first needed (the development key kept in the database).
 */
export type SecretSource = readonly string[] | (() => Promise<readonly string[]>)

export interface JwtSettings {
  secrets: SecretSource
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

interface SigningKey {
  kid: string
  key: Uint8Array
}

interface KeyRing {
  current: SigningKey
  byKid: ReadonlyMap<string, Uint8Array>
}

/**
 * A key's id, derived from the secret itself so that every instance given the same secret names
 * it alike without configuration. An HMAC of a fixed label: it reveals nothing a token's own
 * signature does not already allow an attacker to test offline.
 */
export function keyId(secret: string): string {
  return createHmac('sha256', secret).update('chat-api signing key id').digest('base64url').slice(0, 16)
}

function keyRing(secrets: readonly string[]): KeyRing {
  const keys = secrets.map((s) => ({ kid: keyId(s), key: new TextEncoder().encode(s) }))
  const [current] = keys
  if (!current) throw new Error('no JWT signing secret')
  return { current, byKid: new Map(keys.map((k) => [k.kid, k.key])) }
}

/**
 * Signs and verifies access tokens. The algorithm is pinned: `none` and RS/HS confusion are
 * refused. Every token names its key (`kid`); verification uses that key only, so a token
 * signed with a key no longer listed, or naming none, is refused.
 */
export class AccessTokens {
  private ring: Promise<KeyRing> | undefined

  constructor(private readonly settings: JwtSettings) {}

  get ttlSec(): number {
    return this.settings.accessTtlSec
  }

  /** Loads the keys (startup calls it so that a database that cannot give them fails loudly). */
  async ready(): Promise<void> {
    await this.keys()
  }

  async sign(userId: string): Promise<string> {
    const { current } = await this.keys()
    return new SignJWT({ typ: 'access' })
      .setProtectedHeader({ alg: ALG, typ: 'JWT', kid: current.kid })
      .setSubject(userId)
      .setIssuer(this.settings.issuer)
      .setAudience(this.settings.audience)
      .setIssuedAt()
      .setExpirationTime(`${this.settings.accessTtlSec}s`)
      .setJti(randomUUID())
      .sign(current.key)
  }

  async verify(token: string): Promise<AccessClaims> {
    const { byKid } = await this.keys()
    try {
      const pick = (header: JWTHeaderParameters) => {
        const key = header.kid === undefined ? undefined : byKid.get(header.kid)
        // A kid not listed (a removed key, or none at all) is refused like a bad signature.
        if (!key) throw new UnauthorizedError('invalid access token')
        return key
      }
      const { payload } = await jwtVerify(token, pick, {
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

  /** The key ring, loaded once; a failed load (database down) is retried by the next call. */
  private keys(): Promise<KeyRing> {
    const { secrets } = this.settings
    if (typeof secrets !== 'function') {
      this.ring ??= Promise.resolve(keyRing(secrets))
      return this.ring
    }
    if (!this.ring) {
      const loading = secrets().then(keyRing)
      this.ring = loading
      loading.catch(() => {
        if (this.ring === loading) this.ring = undefined
      })
    }
    return this.ring
  }
}
