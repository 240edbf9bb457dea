import { invalid, NotFoundError } from '../errors.js'
import { isUuid, newId } from '../lib/ids.js'
import { refuseUrl } from '../lib/ssrf.js'
import { WEBHOOK_TEST_EVENT } from '../protocol/outbox-events.js'
import type { Db } from '../store/db.js'
import type { WebhookEndpointRow } from '../store/schema.js'
import * as store from '../store/webhooks.js'
import type { DeliveryChannel, DeliveryResult, OutboxEvent } from './outbox-channel.js'
import { generateSecret, signedHeaders, validSecret } from './webhook-signature.js'

/** What one POST to a receiver gave: its status, or why there was none. */
export interface PostOutcome {
  status?: number
  retryAfterMs?: number | undefined
  body?: string
  error?: string
}

/** Sends one POST; implemented in `src/webhooks/http-post.ts` (with the SSRF checks). Never throws. */
export interface WebhookPoster {
  post(url: string, headers: Record<string, string>, body: string, timeoutMs: number): Promise<PostOutcome>
  close?(): void
}

export interface WebhookOptions {
  /** WEBHOOK_URL + WEBHOOK_SECRET (+ WEBHOOK_EVENTS): the endpoint configured in the environment. */
  envEndpoint: { url: string; secret: string; events: string[] } | undefined
  timeoutMs: number
  allowPrivate: boolean
}

/** The target naming the environment's endpoint (registered endpoints are named by their id). */
export const ENV_TARGET = 'env'
export const MAX_ENDPOINTS = 100
/** How long this instance trusts its list of registered endpoints when deciding what to record. */
const REFRESH_MS = 5000
const TARGETS_MS = 1000

export interface WebhookView {
  id: string
  url: string
  events: string[]
  description: string
  created_at: string
}

const matches = (filter: string[], type: string) => filter.length === 0 || filter.includes(type)

/**
 * Webhooks (docs/notifications.md, "Webhooks"): the outbox channel that POSTs every event to
 * each endpoint whose filter takes it, signed the Standard Webhooks way, and the operators' use
 * cases behind `/api/v1/admin/webhooks`. Endpoints are the operator's own backend, so they get
 * every event they ask for, whatever the conversation.
 */
export class WebhookService implements DeliveryChannel {
  readonly name = 'webhook'
  /** Each registered endpoint's filter, as last read, and when (undefined: never read yet). */
  private filters: { at: number; list: string[][] } | undefined
  private refreshing = false
  private rows: { at: number; list: WebhookEndpointRow[] } | undefined

  constructor(
    private readonly db: Db,
    private readonly poster: WebhookPoster,
    private readonly opts: WebhookOptions,
    private readonly clock: () => number = Date.now,
  ) {}

  /**
   * Whether an event of this type has a receiver, without waiting: asked on the send path, so
   * it answers from a list re-read in the background every few seconds (an endpoint registered
   * on another instance starts receiving within REFRESH_MS). Before the first read: yes.
   */
  wants(type: string): boolean {
    const env = this.opts.envEndpoint
    if (env && matches(env.events, type)) return true
    if (!this.filters || this.clock() - this.filters.at > REFRESH_MS) void this.refresh()
    return !this.filters || this.filters.list.some((f) => matches(f, type))
  }

  async targets(event: OutboxEvent): Promise<string[]> {
    const rows = await this.endpoints()
    const targets = rows.filter((r) => matches(r.events, event.type)).map((r) => r.id)
    const env = this.opts.envEndpoint
    if (env && matches(env.events, event.type)) targets.push(ENV_TARGET)
    return targets
  }

  async deliver(event: OutboxEvent, target: string): Promise<DeliveryResult> {
    const endpoint = target === ENV_TARGET ? this.opts.envEndpoint : await this.endpointFor(target)
    if (!endpoint) return { kind: 'gone', error: 'the endpoint no longer exists' }
    const body = JSON.stringify({ type: event.type, timestamp: event.occurredAt, data: event.data })
    const out = await this.send(endpoint, event.id, body)
    if (out.status !== undefined && out.status >= 200 && out.status < 300) return { kind: 'delivered' }
    const error = out.error ?? `HTTP ${out.status}`
    return out.retryAfterMs === undefined
      ? { kind: 'retry', error }
      : { kind: 'retry', error, retryAfterMs: out.retryAfterMs }
  }

  /** Registers an endpoint; the answer is the only one that ever shows its secret. */
  async create(
    actorId: string,
    input: { url: string; events?: string[] | undefined; secret?: string | undefined; description?: string },
  ): Promise<WebhookView & { secret: string }> {
    const refused = refuseUrl(input.url, this.opts.allowPrivate)
    if (refused) throw invalid('url', refused)
    if (input.secret !== undefined && !validSecret(input.secret)) {
      throw invalid('secret', 'must be whsec_ followed by the base64 of 24 to 64 random bytes')
    }
    if ((await store.countEndpoints(this.db)) >= MAX_ENDPOINTS) {
      throw invalid('url', `at most ${MAX_ENDPOINTS} endpoints may be registered`)
    }
    const row = await store.insertEndpoint(this.db, {
      id: newId(),
      url: input.url,
      events: [...new Set(input.events ?? [])],
      secret: input.secret ?? generateSecret(),
      description: input.description ?? '',
      createdBy: actorId,
    })
    await this.refresh()
    return { ...view(row), secret: row.secret }
  }

  async list(): Promise<WebhookView[]> {
    return (await store.listEndpoints(this.db)).map(view)
  }

  async remove(id: string): Promise<void> {
    if (!isUuid(id) || !(await store.deleteEndpoint(this.db, id))) throw new NotFoundError('webhook')
    await this.refresh()
  }

  /** Sends one signed `webhook.test` event now, outside the outbox, and says how the receiver answered. */
  async test(id: string) {
    const endpoint = await this.endpoint(id)
    if (!endpoint) throw new NotFoundError('webhook')
    const eventId = newId()
    const body = JSON.stringify({
      type: WEBHOOK_TEST_EVENT,
      timestamp: new Date(this.clock()).toISOString(),
      data: { webhook_id: endpoint.id },
    })
    const out = await this.send(endpoint, eventId, body)
    const delivered = out.status !== undefined && out.status >= 200 && out.status < 300
    return {
      webhook_id: eventId,
      delivered,
      status_code: out.status ?? null,
      error: delivered ? null : (out.error ?? `HTTP ${out.status}`),
    }
  }

  close(): void {
    this.poster.close?.()
  }

  /**
   * The registered endpoints, read at most once per TARGETS_MS: a worker expands a hundred events
   * per turn, and one query per event was most of its cost. An endpoint registered on another
   * instance is therefore a target from about a second after it was created.
   */
  private async endpoints(): Promise<WebhookEndpointRow[]> {
    const now = this.clock()
    if (this.rows && now - this.rows.at < TARGETS_MS) return this.rows.list
    const list = await store.listEndpoints(this.db)
    this.rows = { at: now, list }
    this.filters = { at: now, list: list.map((r) => r.events) }
    return list
  }

  /**
   * The endpoint a delivery goes to, from the list `targets` reads (at most a second old: an
   * endpoint deleted on another instance may receive for up to a second more); one this instance
   * has not seen yet (registered after its last read) is read by id.
   */
  private async endpointFor(id: string): Promise<WebhookEndpointRow | undefined> {
    return (await this.endpoints()).find((r) => r.id === id) ?? (await this.endpoint(id))
  }

  private async endpoint(id: string): Promise<WebhookEndpointRow | undefined> {
    return isUuid(id) ? store.findEndpoint(this.db, id) : undefined
  }

  private send(endpoint: { url: string; secret: string }, id: string, body: string) {
    const timestamp = Math.floor(this.clock() / 1000)
    return this.poster.post(
      endpoint.url,
      signedHeaders(endpoint.secret, id, timestamp, body),
      body,
      this.opts.timeoutMs,
    )
  }

  private async refresh(): Promise<void> {
    if (this.refreshing) return
    this.refreshing = true
    try {
      const rows = await store.listEndpoints(this.db)
      this.rows = { at: this.clock(), list: rows }
      this.filters = { at: this.clock(), list: rows.map((r) => r.events) }
    } catch {
      // Kept as it was; the next `wants` tries again.
    } finally {
      this.refreshing = false
    }
  }
}

const view = (r: WebhookEndpointRow): WebhookView => ({
  id: r.id,
  url: r.url,
  events: r.events,
  description: r.description,
  created_at: r.createdAt.toISOString(),
})
