import { request } from 'node:https'
import { rootCertificates } from 'node:tls'
import webpush from 'web-push'
import { pinnedLookup, resolvePublic } from '../lib/ssrf.js'
import type { VapidKeys } from './push-subscriptions.js'

/** One notification to one browser, encrypted (RFC 8291, aes128gcm) and signed (RFC 8292 VAPID). */
export interface PushRequest {
  subscription: { endpoint: string; keys: { p256dh: string; auth: string } }
  payload: string
  /** Replaces an undelivered push with the same topic at the push service (at most 32 base64url chars). */
  topic: string
  urgency: webpush.Urgency
  ttlSec: number
}

export interface SenderOptions {
  vapid: VapidKeys & { subject: string }
  allowPrivate: boolean
  timeoutMs: number
  /** CA certificates (PEM, PUSH_CA_FILE) trusted besides the system ones: a private or test push service. */
  ca?: string | undefined
}

export type SendOutcome =
  | { kind: 'sent'; status: number }
  /** The push service no longer knows the subscription (404/410): delete it. */
  | { kind: 'gone'; status: number; error?: string }
  | { kind: 'retry'; error: string; retryAfterMs?: number }

/**
 * Sends one push. Never throws for the receiver's failures: 2xx is `sent`, 404/410 `gone`,
 * anything else (429, 5xx, other 4xx, a timeout, a refused connection, an endpoint that now
 * resolves to a private address) `retry`, with the push service's Retry-After when it gave one.
 */
export async function sendPush(req: PushRequest, opts: SenderOptions): Promise<SendOutcome> {
  let details: webpush.RequestDetails
  try {
    details = webpush.generateRequestDetails(req.subscription, req.payload, {
      vapidDetails: opts.vapid,
      TTL: req.ttlSec,
      urgency: req.urgency,
      topic: req.topic,
      contentEncoding: 'aes128gcm',
    })
  } catch (err) {
    // Keys no payload can be encrypted for (checked at registration, so only a corrupted row): drop it.
    return {
      kind: 'gone',
      status: 0,
      error: `cannot encrypt for this subscription: ${(err as Error).message}`,
    }
  }
  const url = new URL(details.endpoint)
  let target: { address: string; family: 4 | 6 }
  try {
    target = await resolvePublic(url.hostname, opts.allowPrivate)
  } catch (err) {
    return { kind: 'retry', error: `endpoint host: ${(err as Error).message}` }
  }
  try {
    const res = await post(
      url,
      details.headers as Record<string, string | number>,
      details.body,
      target,
      opts,
    )
    if (res.status >= 200 && res.status < 300) return { kind: 'sent', status: res.status }
    if (res.status === 404 || res.status === 410) return { kind: 'gone', status: res.status }
    const retryAfterMs = parseRetryAfter(res.retryAfter)
    return {
      kind: 'retry',
      error: `push service answered ${res.status}`,
      ...(retryAfterMs === undefined ? {} : { retryAfterMs }),
    }
  } catch (err) {
    return { kind: 'retry', error: `push service unreachable: ${(err as Error).message}` }
  }
}

/** POSTs to the address already checked, whatever the name resolves to by now (no DNS rebinding). */
function post(
  url: URL,
  headers: Record<string, string | number>,
  body: Buffer | null,
  target: { address: string; family: 4 | 6 },
  opts: SenderOptions,
): Promise<{ status: number; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      {
        method: 'POST',
        headers,
        lookup: pinnedLookup(target),
        timeout: opts.timeoutMs,
        signal: AbortSignal.timeout(opts.timeoutMs),
        ...(opts.ca ? { ca: trustedCas(opts.ca) } : {}),
      },
      (res) => {
        // The body says nothing we act on; read it (bounded by the socket) and drop it.
        res.resume()
        res.on('end', () => resolve({ status: res.statusCode ?? 0, retryAfter: res.headers['retry-after'] }))
        res.on('error', reject)
        // Cut off mid-body (the deadline): no 'end' comes.
        res.on('close', () => reject(new Error('connection closed before the answer ended')))
      },
    )
    req.on('timeout', () => req.destroy(new Error(`no answer within ${opts.timeoutMs} ms`)))
    req.on('error', reject)
    req.end(body ?? undefined)
  })
}

let trusted: { extra: string; all: string[] } | undefined

/**
 * The system CAs plus `extra`: Node's `ca` option replaces the CAs it trusts instead of adding to
 * them, so `extra` alone would make every public push service (FCM, autopush…) untrusted.
 */
export function trustedCas(extra: string): string[] {
  if (trusted?.extra !== extra) trusted = { extra, all: [...rootCertificates, extra] }
  return trusted.all
}

/** Retry-After as delay-seconds or an HTTP date, in milliseconds; undefined when absent or unreadable. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === '') return undefined
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000
  const at = Date.parse(value)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
