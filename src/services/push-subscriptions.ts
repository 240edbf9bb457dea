import { createPublicKey } from 'node:crypto'
import webpush from 'web-push'
import { base64urlBytes, type PushConfig } from '../config/push-config.js'
import { ConflictError, invalid, NotFoundError, UnavailableError, ValidationError } from '../errors.js'
import { isUuid, newId } from '../lib/ids.js'
import { resolvePublic, UnsafeAddressError } from '../lib/ssrf.js'
import type { Db } from '../store/db.js'
import * as store from '../store/push-subscriptions.js'
import { sharedSecret } from '../store/signing-keys.js'

/** Name of the generated VAPID key pair in `signing_keys`. */
const VAPID_KEY_NAME = 'vapid'

export interface VapidKeys {
  publicKey: string
  privateKey: string
}

/** The browser's `PushSubscription.toJSON()`, as POST /users/me/push-subscriptions receives it. */
export interface SubscriptionInput {
  endpoint: string
  expirationTime?: number | null | undefined
  keys: { p256dh: string; auth: string }
}

export interface PushSubscriptionView {
  id: string
  endpoint: string
  created_at: string
  expires_at: string | null
}

const view = (r: store.PushSubscriptionRow): PushSubscriptionView => ({
  id: r.id,
  endpoint: r.endpoint,
  created_at: r.createdAt.toISOString(),
  expires_at: r.expiresAt?.toISOString() ?? null,
})

/**
 * Web Push subscriptions and the VAPID key pair. Endpoints are checked when registered (https, a
 * public address unless PUSH_ALLOW_PRIVATE) and again at every delivery (services/push-sender.ts),
 * since a name can resolve elsewhere later.
 */
export class PushSubscriptionService {
  private keys: Promise<VapidKeys> | undefined

  constructor(
    private readonly db: Db,
    private readonly config: PushConfig,
  ) {}

  /**
   * The VAPID pair: VAPID_PUBLIC_KEY/VAPID_PRIVATE_KEY, or the pair kept in the database (the
   * first instance to need one generates it; instances starting together agree on one).
   */
  vapidKeys(): Promise<VapidKeys> {
    this.keys ??= this.loadKeys().catch((err) => {
      this.keys = undefined
      throw err
    })
    return this.keys
  }

  private async loadKeys(): Promise<VapidKeys> {
    if (this.config.vapidKeys) return this.config.vapidKeys
    const candidate = webpush.generateVAPIDKeys()
    const stored = await sharedSecret(this.db, VAPID_KEY_NAME, JSON.stringify(candidate))
    return JSON.parse(stored) as VapidKeys
  }

  /**
   * Registers the caller's browser. `created: false` when this endpoint was already the caller's
   * (its keys are updated). 409 past PUSH_MAX_SUBSCRIPTIONS_PER_USER; 422 for an endpoint that is
   * not a public https URL or keys that are not a P-256 point and a 16-byte secret.
   */
  async subscribe(
    userId: string,
    input: SubscriptionInput,
    now = new Date(),
  ): Promise<{ subscription: PushSubscriptionView; created: boolean }> {
    checkKeys(input.keys)
    const expiresAt = expiry(input.expirationTime, now)
    await this.checkEndpoint(input.endpoint)
    const saved = await store.saveSubscription(
      this.db,
      {
        id: newId(),
        userId,
        endpoint: input.endpoint,
        p256dh: input.keys.p256dh,
        auth: input.keys.auth,
        expiresAt,
      },
      this.config.maxSubscriptionsPerUser,
    )
    if (saved === 'limit') {
      throw new ConflictError(
        `at most ${this.config.maxSubscriptionsPerUser} push subscriptions per user; delete one first`,
      )
    }
    return { subscription: view(saved.row), created: saved.created }
  }

  async list(userId: string): Promise<PushSubscriptionView[]> {
    return (await store.subscriptionsOf(this.db, userId)).map(view)
  }

  /** Deletes one of the caller's subscriptions; 404 for anyone else's or an unknown id. */
  async unsubscribe(userId: string, id: string): Promise<void> {
    if (!isUuid(id) || !(await store.deleteSubscription(this.db, id, userId))) {
      throw new NotFoundError('push subscription')
    }
  }

  private async checkEndpoint(endpoint: string): Promise<void> {
    let url: URL
    try {
      url = new URL(endpoint)
    } catch {
      throw invalid('endpoint', 'is not a URL')
    }
    if (url.protocol !== 'https:') throw invalid('endpoint', 'must be an https URL')
    if (url.username || url.password) throw invalid('endpoint', 'must not carry credentials')
    try {
      await resolvePublic(url.hostname, this.config.allowPrivate)
    } catch (err) {
      if (err instanceof UnsafeAddressError) throw invalid('endpoint', 'must reach a public address')
      const code = (err as { code?: string }).code
      if (code === 'ENOTFOUND' || code === 'ENODATA') throw invalid('endpoint', 'its host does not resolve')
      throw new UnavailableError('could not resolve the endpoint host; retry shortly')
    }
  }
}

/** The browser's keys: an uncompressed P-256 point (65 bytes) and a 16-byte auth secret, base64url. */
function checkKeys(keys: SubscriptionInput['keys']): void {
  const problems: { field: string; message: string }[] = []
  if (!isP256Point(keys.p256dh)) {
    problems.push({ field: 'keys/p256dh', message: 'must be an uncompressed P-256 public key, base64url' })
  }
  if (base64urlBytes(keys.auth) !== 16) {
    problems.push({ field: 'keys/auth', message: 'must be 16 bytes, base64url' })
  }
  if (problems.length > 0) throw new ValidationError(problems)
}

function isP256Point(text: string): boolean {
  if (base64urlBytes(text) !== 65) return false
  const raw = Buffer.from(text, 'base64url')
  if (raw[0] !== 4) return false
  try {
    // Throws unless the point is on the curve.
    createPublicKey({
      key: {
        kty: 'EC',
        crv: 'P-256',
        x: raw.subarray(1, 33).toString('base64url'),
        y: raw.subarray(33).toString('base64url'),
      },
      format: 'jwk',
    })
    return true
  } catch {
    return false
  }
}

/** `expirationTime` (ms since the epoch, or null); one already past is refused. */
function expiry(expirationTime: number | null | undefined, now: Date): Date | null {
  if (expirationTime === undefined || expirationTime === null) return null
  if (expirationTime <= now.getTime()) throw invalid('expirationTime', 'is in the past')
  return new Date(expirationTime)
}
