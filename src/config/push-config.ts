import { readFileSync } from 'node:fs'

/** Web Push settings (docs/notifications.md, "Web Push"), parsed with the rest of the configuration. */
export interface PushConfig {
  /** PUSH_ENABLED: the outbox worker sends Web Push (the push channel is registered). */
  enabled: boolean
  /** From VAPID_PUBLIC_KEY / VAPID_PRIVATE_KEY; undefined: the pair kept in the database. */
  vapidKeys: { publicKey: string; privateKey: string } | undefined
  vapidSubject: string
  preview: 'full' | 'none'
  /** Endpoints may resolve to private, loopback and link-local addresses (tests only). */
  allowPrivate: boolean
  /** PUSH_CA_FILE's contents (PEM): CAs trusted for push services besides the system ones. */
  ca: string | undefined
  maxSubscriptionsPerUser: number
  coalesceWindowMs: number
  ttlSec: number
  timeoutMs: number
}

/** Reads the PUSH_* and VAPID_* values `loadConfig` parsed; adds a line to `problems` for each bad one. */
export function readPushConfig(v: Record<string, unknown>, problems: string[]): PushConfig {
  const publicKey = v.VAPID_PUBLIC_KEY as string | undefined
  const privateKey = v.VAPID_PRIVATE_KEY as string | undefined
  if ((publicKey === undefined) !== (privateKey === undefined)) {
    problems.push('VAPID_PUBLIC_KEY: set both VAPID_PUBLIC_KEY and VAPID_PRIVATE_KEY, or neither')
  }
  if (publicKey !== undefined && base64urlBytes(publicKey) !== 65) {
    problems.push('VAPID_PUBLIC_KEY: must be an uncompressed P-256 public key, base64url (65 bytes)')
  }
  if (privateKey !== undefined && base64urlBytes(privateKey) !== 32) {
    problems.push('VAPID_PRIVATE_KEY: must be a P-256 private key, base64url (32 bytes)')
  }
  const subject = v.VAPID_SUBJECT as string
  if (!/^(mailto:|https:\/\/)\S+$/.test(subject)) {
    problems.push('VAPID_SUBJECT: must be a mailto: or https: URL (RFC 8292)')
  }
  return {
    enabled: v.PUSH_ENABLED as boolean,
    vapidKeys: publicKey && privateKey ? { publicKey, privateKey } : undefined,
    vapidSubject: subject,
    preview: v.PUSH_PREVIEW as PushConfig['preview'],
    allowPrivate: v.PUSH_ALLOW_PRIVATE as boolean,
    ca: readCaFile(v.PUSH_CA_FILE as string | undefined, problems),
    maxSubscriptionsPerUser: v.PUSH_MAX_SUBSCRIPTIONS_PER_USER as number,
    coalesceWindowMs: v.PUSH_COALESCE_WINDOW_MS as number,
    ttlSec: v.PUSH_TTL_SEC as number,
    timeoutMs: v.PUSH_TIMEOUT_MS as number,
  }
}

/** PUSH_CA_FILE read once at startup: a CA that cannot be read would fail every push much later, unnoticed. */
function readCaFile(path: string | undefined, problems: string[]): string | undefined {
  if (path === undefined) return undefined
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    problems.push(
      `PUSH_CA_FILE: cannot read ${path} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`,
    )
    return undefined
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    problems.push(`PUSH_CA_FILE: ${path} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`)
    return undefined
  }
  return text
}

/** The decoded length of a base64url string, or -1 when it is not one. */
export function base64urlBytes(text: string): number {
  if (!/^[A-Za-z0-9_-]+={0,2}$/.test(text)) return -1
  return Buffer.from(text, 'base64url').length
}
