import { OUTBOX_EVENT_TYPES } from '../protocol/outbox-events.js'
import { validSecret } from '../services/webhook-signature.js'

export interface OutboxConfig {
  pollMs: number
  batchSize: number
  maxInFlight: number
  retryBaseMs: number
  retryMaxDelayMs: number
  maxAgeMs: number
  keepDeliveredMs: number
  keepDeadMs: number
  webhooks: {
    /** WEBHOOK_URL with its secret and filter; undefined when unset. */
    env: { url: string; secret: string; events: string[] } | undefined
    timeoutMs: number
    concurrency: number
    allowPrivate: boolean
  }
}

/** The outbox and webhook settings (docs/notifications.md), with their problems added to `problems`. */
export function outboxConfig(v: Record<string, unknown>, problems: string[]): OutboxConfig {
  const int = (name: string) => v[name] as number
  const url = v.WEBHOOK_URL as string | undefined
  const secret = v.WEBHOOK_SECRET as string | undefined
  const events = (v.WEBHOOK_EVENTS as string[] | undefined) ?? []
  if (url !== undefined && secret === undefined) {
    problems.push('WEBHOOK_SECRET: required with WEBHOOK_URL (whsec_ + base64 of 24-64 random bytes)')
  }
  if (secret !== undefined && !validSecret(secret)) {
    problems.push('WEBHOOK_SECRET: must be whsec_ followed by the base64 of 24 to 64 random bytes')
  }
  const unknown = events.filter((e) => !(OUTBOX_EVENT_TYPES as string[]).includes(e))
  if (unknown.length > 0) {
    problems.push(
      `WEBHOOK_EVENTS: unknown event(s) ${unknown.join(', ')}; known: ${OUTBOX_EVENT_TYPES.join(', ')}`,
    )
  }
  return {
    pollMs: int('OUTBOX_POLL_MS'),
    batchSize: int('OUTBOX_BATCH'),
    maxInFlight: int('OUTBOX_MAX_IN_FLIGHT'),
    retryBaseMs: int('OUTBOX_RETRY_BASE_MS'),
    retryMaxDelayMs: int('OUTBOX_RETRY_MAX_DELAY_MS'),
    maxAgeMs: int('OUTBOX_MAX_AGE_SEC') * 1000,
    keepDeliveredMs: int('OUTBOX_KEEP_DELIVERED_SEC') * 1000,
    keepDeadMs: int('OUTBOX_KEEP_DEAD_SEC') * 1000,
    webhooks: {
      env: url !== undefined && secret !== undefined ? { url, secret, events } : undefined,
      timeoutMs: int('WEBHOOK_TIMEOUT_MS'),
      concurrency: int('WEBHOOK_CONCURRENCY'),
      allowPrivate: v.WEBHOOK_ALLOW_PRIVATE as boolean,
    },
  }
}
