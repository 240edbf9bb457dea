import type { Db } from '../store/db.js'
import {
  backlog,
  type ClaimedDelivery,
  claimDeliveries,
  claimEvents,
  cleanup,
  type DeliveryKey,
  deliveryKey,
  finishExpansion,
  type Outcome,
  type StoredEvent,
  settleMany,
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
  /** Due deliveries were left unclaimed for want of room: a turn runs once half of it is free. */
  private roomWanted = false
  private readonly attempts = new Set<Promise<void>>()
  private readonly busyTargets = new Map<string, number>()
  private readonly queued = new Map<string, (() => void)[]>()
  /** Outcomes waiting to be recorded, all in the next statement (see `record`). */
  private outcomes: { outcome: Outcome; recorded: () => void }[] = []
  private recording = false
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

  /**
   * Expands a batch of events; true when there may be more. As many of the new deliveries as
   * there is room for are claimed by the same statement and started here and now.
   */
  private async expand(): Promise<boolean> {
    const events = await claimEvents(this.db, this.opts.batchSize, this.leaseMs)
    if (events.length === 0) return false
    const done: string[] = []
    const deliveries: DeliveryKey[] = []
    const byId = new Map<string, StoredEvent>()
    // A few events' targets at a time: a channel may read the database for each (push does),
    // and the pool is the send path's too.
    await eachLimited(events, TARGETS_AT_ONCE, async (stored) => {
      try {
        deliveries.push(...(await this.targetsOf(stored)))
        done.push(stored.id)
        byId.set(stored.id, stored)
      } catch (err) {
        // Its lease runs out and a later turn tries again, until the event is too old to matter.
        if (Date.now() - stored.occurredAt >= this.opts.maxAgeMs) {
          done.push(stored.id)
          this.bump('expand', 'dead')
        }
        this.log.warn({ err, event: stored.id }, 'outbox: could not list the targets of an event')
      }
    })
    const room = Math.max(0, this.opts.maxInFlight - this.inFlight)
    const claimed = await finishExpansion(this.db, done, deliveries, { count: room, leaseMs: this.leaseMs })
    if (deliveries.length > room) this.roomWanted = true
    for (const key of claimed) {
      const event = byId.get(key.eventId)
      if (event) this.startAttempt({ ...key, attempt: 1, event })
    }
    return events.length >= this.opts.batchSize || deliveries.length > 0
  }

  private async targetsOf(stored: StoredEvent): Promise<DeliveryKey[]> {
    const event = toOutboxEvent(stored)
    const mine: DeliveryKey[] = []
    for (const channel of this.channels) {
      // Recorded for another channel: one that wants none of its type has no targets to find.
      if (channel.wants && !channel.wants(event.type)) continue
      for (const target of await channel.targets(event)) {
        mine.push({ eventId: event.id, channel: channel.name, target })
      }
    }
    return mine
  }

  /** Claims as many due deliveries as there is room for and starts them; true when the batch was full. */
  private async claim(): Promise<boolean> {
    const room = Math.min(this.opts.batchSize, this.opts.maxInFlight - this.inFlight)
    if (room <= 0) {
      this.roomWanted = true
      return false
    }
    const claimed = await claimDeliveries(this.db, room, this.leaseMs)
    for (const d of claimed) this.startAttempt(d)
    if (claimed.length >= room && room < this.opts.batchSize) this.roomWanted = true
    return claimed.length >= this.opts.batchSize
  }

  /** Runs one attempt in the background; it holds an in-flight slot until its outcome is recorded. */
  private startAttempt(d: ClaimedDelivery): void {
    this.inFlight++
    const attempt = this.attempt(d).finally(() => {
      this.inFlight--
      this.attempts.delete(attempt)
      // Not a turn per finished attempt (two queries each): one when room is wanted and half free.
      if (this.roomWanted && this.inFlight <= this.opts.maxInFlight / 2) {
        this.roomWanted = false
        this.wake?.()
      }
    })
    this.attempts.add(attempt)
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
    await this.record({
      eventId: d.eventId,
      channel: d.channel,
      target: d.target,
      attempt: d.attempt,
      outcome: this.settlement(d, result),
    })
  }

  /**
   * Queues an outcome; the outcomes that arrive while one statement runs go together in the
   * next (group commit, as the message writer does), so recording costs one statement per
   * batch whatever the delivery rate.
   */
  private record(outcome: Outcome): Promise<void> {
    return new Promise((recorded) => {
      this.outcomes.push({ outcome, recorded })
      if (!this.recording) void this.recordQueued()
    })
  }

  private async recordQueued(): Promise<void> {
    this.recording = true
    try {
      while (this.outcomes.length > 0) {
        const batch = this.outcomes.splice(0, RECORD_BATCH)
        try {
          const statuses = await settleMany(
            this.db,
            batch.map((b) => b.outcome),
          )
          for (const { outcome } of batch) this.counted(outcome, statuses.get(deliveryKey(outcome)))
        } catch (err) {
          // Not recorded: the leases run out and the deliveries are attempted again (same webhook-id).
          this.log.warn({ err, deliveries: batch.length }, 'outbox: could not record delivery outcomes')
        }
        for (const b of batch) b.recorded()
      }
    } finally {
      this.recording = false
    }
  }

  private counted(d: Outcome, status: string | undefined): void {
    if (status === 'delivered') this.bump(d.channel, 'delivered')
    else if (status === 'gone') this.bump(d.channel, 'gone')
    else if (status === 'dead') this.bump(d.channel, 'dead')
    else if (status === 'pending') this.bump(d.channel, 'retried')
    if (status === 'dead') this.log.warn({ event: d.eventId, target: d.target }, 'outbox: delivery is dead')
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

/** Events whose targets are looked up at once while expanding. */
const TARGETS_AT_ONCE = 4

/** Runs `fn` over `items`, at most `limit` at once. */
async function eachLimited<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0
  const lane = async () => {
    while (next < items.length) await fn(items[next++] as T)
  }
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane))
}

/** Outcomes recorded per statement at most. */
const RECORD_BATCH = 1000

const toOutboxEvent = (e: StoredEvent): OutboxEvent => ({
  id: e.id,
  type: e.type,
  occurredAt: new Date(e.occurredAt).toISOString(),
  conversationId: e.conversationId,
  data: e.data,
})
