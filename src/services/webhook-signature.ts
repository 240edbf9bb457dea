import { createHmac, randomBytes } from 'node:crypto'

/**
 * Standard Webhooks signing (https://www.standardwebhooks.com): the key is the base64 part of a
 * `whsec_…` secret; `webhook-signature` is `v1,` + base64 HMAC-SHA256 over `{id}.{timestamp}.{body}`.
 * Receivers verify with any Standard Webhooks library (docs/notifications.md has a snippet).
 */
export const SECRET_PREFIX = 'whsec_'
export const SECRET_PATTERN = '^whsec_[A-Za-z0-9+/]{32,88}={0,2}$'

/** A new secret: 24 random bytes (192 bits), as Standard Webhooks libraries generate them. */
export const generateSecret = (): string => `${SECRET_PREFIX}${randomBytes(24).toString('base64')}`

/** True when `secret` is `whsec_` and base64 of 24 to 64 bytes. */
export function validSecret(secret: string): boolean {
  if (!new RegExp(SECRET_PATTERN).test(secret)) return false
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64')
  return key.length >= 24 && key.length <= 64
}

export function signature(secret: string, id: string, timestampSec: number, body: string): string {
  const key = Buffer.from(secret.slice(SECRET_PREFIX.length), 'base64')
  return `v1,${createHmac('sha256', key).update(`${id}.${timestampSec}.${body}`).digest('base64')}`
}

/** The three headers of one signed delivery. */
export function signedHeaders(secret: string, id: string, timestampSec: number, body: string) {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(timestampSec),
    'webhook-signature': signature(secret, id, timestampSec, body),
  }
}
