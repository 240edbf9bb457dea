import type { Db } from '../store/db.js'
import {
  backlog,
  type ClaimedDelivery,
  claimDeliveries,
  claimEvents,
  cleanup,
  type DeliveryKey,
  finishExpansion,
  type StoredEvent,
  settle,
} from '../store/outbox.js'
import type { Outbox } from './outbox.js'
import type { DeliveryChannel, DeliveryResult, OutboxEvent } from './outbox-channel.js'

export interface OutboxWorkerOptions {
  /** How often an idle worker looks for work (a commit on this instance wakes it at once). */
  pollMs: number
  /** Events expanded, or deliveries claimed, per query. */
  batchSize: number
  /** Attempts running at once on this instance. */
  maxInFlight: number
  /** Attempts running at once per target (one webhook endpoint) on this instance. */
  perTarget: number
  /** The longest one attempt may take; a slower one counts as failed. */
  attemptTimeoutMs: number
  /** Backoff: attempt n waits a random time in [0, min(maxDelay, base·2^(n-1))] (full jitter). */
  retryBaseMs: number
  retryMaxDelayMs: number
  /** After this long since its event, a failing delivery is dead (the last attempt runs at that moment). */
  maxAgeMs: number
  keepDeliveredMs: number
  keepDeadMs: number
  cleanupEveryMs: number
}

/** Where failures are told (the app's logger). */
export interface WarnLog {
  warn(obj: object, msg: string): void
}

export type OutcomeName = 'delivered' | 'retried' | 'dead' | 'gone'

/**
 * Delivers the outbox (docs/notifications.md, "The outbox"). Each turn: lease unexpanded events
 * and expand each once into one delivery row per channel target; lease due deliveries and run
 * their attempts in the background, at most `maxInFlight` at once and `perTarget` per target.
 * Every claim is a lease taken with `FOR UPDATE SKIP LOCKED`, so any number of instances share
 * the work; a lease is longer than an attempt can last (timeout × the queue a target can have
 * here, plus a margin), so a claim only runs twice when its instance died or lost the database.
 */
export class OutboxWorker {
  readonly counts = new Map<string, number>()
  private readonly byName: Map<string, DeliveryChannel>
  private running = false
  private loop: Promise<void> | undefined
  private wake: (() => void) | undefined
  private nudged = false
  private inFlight = 0
  private readonly attempts = new Set<Promise<void>>()
  private readonly busyTargets = new Map<string, number>()
  private readonly queued = new Map<string, (() => void)[]>()
  private lastCleanup = 0
  private readonly leaseMs: number
  private log: WarnLog = { warn: () => {} }

  constructor(
    private readonly db: Db,
    private readonly channels: readonly DeliveryChannel[],
    private readonly opts: OutboxWorkerOptions,
    outbox?: Outbox,
    private readonly random: () => number = Math.random,
  ) {
    this.byName = new Map(channels.map((c) => [c.name, c]))
    this.leaseMs = opts.attemptTimeoutMs * Math.ceil(opts.maxInFlight / opts.perTarget) + 2000
    outbox?.onCommitted(() => this.nudge())
  }

  start(log?: WarnLog): void {
    if (log) this.log = log
    if (this.running) return
    this.running = true
    this.loop = this.run()
  }

  /** Looks for work now rather than at the next poll. */
  nudge(): void {
    this.nudged = true
    this.wake?.()
  }

  /** Stops claiming and waits for the attempts under way (their outcome is recorded). */
  async stop(): Promise<void> {
    this.running = false
    this.wake?.()
    await this.loop
    await Promise.allSettled([...this.attempts])
  }

  /** Events and deliveries not finished, across every instance. */
  backlog() {
    return backlog(this.db)
  }

  /** How many deliveries ended each way on this instance, by channel: `webhook/delivered` → n. */
  count(channel: string, outcome: OutcomeName): number {
    return this.counts.get(`${channel}/${outcome}`) ?? 0
  }

  private async run(): Promise<void> {
    while (this.running) {
      let more = false
      try {
        more = await this.expand()
        more = (await this.claim()) || more
        if (Date.now() - this.lastCleanup >= this.opts.cleanupEveryMs) {
          this.lastCleanup = Date.now()
          await cleanup(this.db, this.opts.keepDeliveredMs, this.opts.keepDeadMs)
        }
      } catch (err) {
        // The database is down or busy: try again at the next poll; leases keep claims safe.
        this.log.warn({ err }, 'outbox: a turn failed; retried at the next poll')
        more = false
      }
      if (!more) await this.idle()
    }
  }

  private async idle(): Promise<void> {
    if (this.nudged) {
      this.nudged = false
      return
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, this.opts.pollMs)
      this.wake = () => {
        clearTimeout(timer)
        resolve()
      }
    })
    this.wake = undefined
    this.nudged = false
  }

  /** Expands a batch of events; true when there may be more. */
  private async expand(): Promise<boolean> {
    const events = await claimEvents(this.db, this.opts.batchSize, this.leaseMs)
    if (events.length === 0) return false
    const done: string[] = []
    const deliveries: DeliveryKey[] = []
    for (const stored of events) {
      const event = toOutboxEvent(stored)
      try {
        const mine: DeliveryKey[] = []
        for (const channel of this.channels) {
          for (const target of await channel.targets(event)) {
            mine.push({ eventId: event.id, channel: channel.name, target })
          }
        }
        deliveries.push(...mine)
        done.push(event.id)
      } catch (err) {
        // Its lease runs out and a later turn tries again, until the event is too old to matter.
        if (Date.now() - stored.occurredAt >= this.opts.maxAgeMs) {
          done.push(event.id)
          this.bump('expand', 'dead')
        }
        this.log.warn({ err, event: event.id }, 'outbox: could not list the targets of an event')
      }
    }
    await finishExpansion(this.db, done, deliveries)
    return events.length >= this.opts.batchSize || deliveries.length > 0
  }

  /** Claims as many due deliveries as there is room for and starts them; true when the batch was full. */
  private async claim(): Promise<boolean> {
    const room = Math.min(this.opts.batchSize, this.opts.maxInFlight - this.inFlight)
    if (room <= 0) return false
    const claimed = await claimDeliveries(this.db, room, this.leaseMs)
    for (const d of claimed) {
      this.inFlight++
      const attempt = this.attempt(d).finally(() => {
        this.inFlight--
        this.attempts.delete(attempt)
        this.wake?.()
      })
      this.attempts.add(attempt)
    }
    return claimed.length >= room
  }

  private async attempt(d: ClaimedDelivery): Promise<void> {
    const key = `${d.channel} ${d.target}`
    await this.acquire(key)
    let result: DeliveryResult
    try {
      result = await this.deliver(d)
    } finally {
      this.release(key)
    }
    try {
      const status = await settle(this.db, d, this.settlement(d, result))
      if (status === 'delivered') this.bump(d.channel, 'delivered')
      else if (status === 'gone') this.bump(d.channel, 'gone')
      else if (status === 'dead') this.bump(d.channel, 'dead')
      else if (status === 'pending') this.bump(d.channel, 'retried')
      if (status === 'dead') this.log.warn({ event: d.eventId, target: d.target }, 'outbox: delivery is dead')
    } catch (err) {
      // Not recorded: the lease runs out and the delivery is attempted again (same webhook-id).
      this.log.warn({ err, event: d.eventId }, 'outbox: could not record a delivery outcome')
    }
  }

  private async deliver(d: ClaimedDelivery): Promise<DeliveryResult> {
    const channel = this.byName.get(d.channel)
    if (!channel) return { kind: 'retry', error: `no channel ${d.channel} on this instance` }
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<DeliveryResult>((resolve) => {
      timer = setTimeout(
        () => resolve({ kind: 'retry', error: `timed out after ${this.opts.attemptTimeoutMs} ms` }),
        this.opts.attemptTimeoutMs,
      )
    })
    try {
      return await Promise.race([channel.deliver(toOutboxEvent(d.event), d.target, d.attempt), timeout])
    } catch (err) {
      return { kind: 'retry', error: err instanceof Error ? err.message : String(err) }
    } finally {
      clearTimeout(timer)
    }
  }

  private settlement(d: ClaimedDelivery, result: DeliveryResult) {
    if (result.kind !== 'retry') return result
    const ceiling = Math.min(
      this.opts.retryMaxDelayMs,
      this.opts.retryBaseMs * 2 ** Math.min(d.attempt - 1, 40),
    )
    const backoff = this.random() * ceiling
    const delayMs = Math.max(backoff, result.retryAfterMs ?? 0)
    return { kind: 'retry' as const, error: result.error, delayMs, maxAgeMs: this.opts.maxAgeMs }
  }

  private async acquire(key: string): Promise<void> {
    const busy = this.busyTargets.get(key) ?? 0
    if (busy < this.opts.perTarget) {
      this.busyTargets.set(key, busy + 1)
      return
    }
    await new Promise<void>((resolve) => {
      const list = this.queued.get(key) ?? []
      list.push(resolve)
      this.queued.set(key, list)
    })
  }

  /** Hands the slot to the next attempt waiting for this target, or frees it. */
  private release(key: string): void {
    const next = this.queued.get(key)?.shift()
    if (next) {
      next()
      return
    }
    if (this.queued.get(key)?.length === 0) this.queued.delete(key)
    const busy = (this.busyTargets.get(key) ?? 1) - 1
    if (busy <= 0) this.busyTargets.delete(key)
    else this.busyTargets.set(key, busy)
  }

  private bump(channel: string, outcome: OutcomeName): void {
    const key = `${channel}/${outcome}`
    this.counts.set(key, (this.counts.get(key) ?? 0) + 1)
  }
}

const toOutboxEvent = (e: StoredEvent): OutboxEvent => ({
  id: e.id,
  type: e.type,
  occurredAt: new Date(e.occurredAt).toISOString(),
  conversationId: e.conversationId,
  data: e.data,
})
