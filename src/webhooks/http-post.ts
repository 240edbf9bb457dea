import http from 'node:http'
import https from 'node:https'
import { isIP } from 'node:net'
import { guardedLookup, hostOf, isBlockedAddress, refuseUrl } from '../lib/ssrf.js'
import type { PostOutcome, WebhookPoster } from '../services/webhooks.js'

/** What is read of a receiver's answer: enough for a log line, never the whole body. */
const MAX_BODY_BYTES = 4096

/**
 * One JSON POST to a webhook endpoint, with the SSRF policy applied where it counts: on the
 * address the connection is made to. Names are resolved by our own `lookup`, which refuses the
 * connection when any address the name resolves to is blocked, and the socket connects to the
 * address that was checked (no second resolution a DNS rebinding could answer differently).
 * Redirects are not followed (a 3xx is a failure, retried). Never throws.
 */
export class HttpWebhookPoster implements WebhookPoster {
  private readonly agents: { http: http.Agent; https: https.Agent }

  constructor(private readonly allowPrivate: boolean) {
    const lookup = guardedLookup(allowPrivate)
    this.agents = {
      http: new http.Agent({ keepAlive: true, maxSockets: 64, lookup }),
      https: new https.Agent({ keepAlive: true, maxSockets: 64, lookup }),
    }
  }

  async post(
    urlText: string,
    headers: Record<string, string>,
    body: string,
    timeoutMs: number,
  ): Promise<PostOutcome> {
    const refused = refuseUrl(urlText, this.allowPrivate)
    if (refused) return { error: `refused: the URL ${refused}` }
    const url = new URL(urlText)
    const host = hostOf(url)
    // An address literal never goes through `lookup`: check it here.
    if (isIP(host) !== 0 && !this.allowPrivate && isBlockedAddress(host)) {
      return { error: `refused: ${host} is a private or reserved address` }
    }
    const secure = url.protocol === 'https:'
    return new Promise<PostOutcome>((resolve) => {
      let done = false
      const finish = (o: PostOutcome) => {
        if (done) return
        done = true
        clearTimeout(timer)
        resolve(o)
      }
      const req = (secure ? https : http).request(
        url,
        {
          method: 'POST',
          agent: secure ? this.agents.https : this.agents.http,
          headers: {
            ...headers,
            'content-type': 'application/json',
            'content-length': String(Buffer.byteLength(body)),
            'user-agent': 'chat-api-webhooks/1',
          },
        },
        (res) => {
          let read = 0
          let text = ''
          res.on('data', (chunk: Buffer) => {
            if (read < MAX_BODY_BYTES) text += chunk.toString('utf8', 0, MAX_BODY_BYTES - read)
            read += chunk.length
          })
          res.on('end', () =>
            finish({
              status: res.statusCode ?? 0,
              retryAfterMs: retryAfterMs(res.headers['retry-after']),
              body: text,
            }),
          )
          res.on('error', (err) => finish({ error: err.message }))
        },
      )
      const timer = setTimeout(() => {
        finish({ error: `timed out after ${timeoutMs} ms` })
        req.destroy()
      }, timeoutMs)
      req.on('error', (err) => finish({ error: err.message }))
      req.end(body)
    })
  }

  close(): void {
    this.agents.http.destroy()
    this.agents.https.destroy()
  }
}

/** `Retry-After` in seconds or as an HTTP date, in milliseconds from now; undefined when absent or unreadable. */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  if (v === undefined || v.trim() === '') return undefined
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000
  const at = Date.parse(v)
  return Number.isNaN(at) ? undefined : Math.max(0, at - now)
}
