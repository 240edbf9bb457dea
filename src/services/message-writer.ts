import { AppError, isDatabaseUnavailable, UnavailableError } from '../errors.js'
import type { MessageView } from '../protocol/message.js'
import type { Db } from '../store/db.js'
import { type BatchOutcomes, type SendRequest, storeBatch } from '../store/message-batch.js'
import type { ThreadChange } from '../store/message-batch-rich.js'
import { noExtras } from '../store/message-views.js'
import type { Outbox } from './outbox.js'
import { toMessageView } from './views.js'

export type { SendRequest }

export interface SendResult {
  /** Built once per message: the ack, the REST answer and the published event share it. */
  message: MessageView
  /** False when `clientMsgId` matched an earlier message, which is returned instead. */
  created: boolean
}

interface Pending {
  req: SendRequest
  resolve: (r: SendResult) => void
  reject: (e: unknown) => void
  /** `performance.now()` when the frame (or request) arrived, and when it was queued. */
  receivedAt: number
  queuedAt: number
}

export type SendStage = 'receive' | 'queue' | 'transaction' | 'publish' | 'write' | 'total'

/** Where the writer reports its timings (the metrics); called on the hot path, so kept cheap. */
export interface SendProbe {
  stage(stage: SendStage, seconds: number): void
  batch(size: number): void
  shed(reason: 'queue_full'): void
}

export interface WriterOptions {
  maxBatch: number
  /**
   * Sends that may wait for a transaction. Past it a send is refused at once (`OverloadedError`)
   * instead of queued: offered load above what the database sustains would otherwise grow the
   * queue until latency reaches seconds, and every batch would scan an ever longer queue.
   */
  maxQueue?: number | undefined
  probe?: SendProbe | undefined
  /**
   * The database runs a transaction's statements in order on one connection (postgres.js, not
   * PGlite): a plain batch's COMMIT is sent behind its insert (and its outbox events') instead of
   * after their answers, one round trip fewer per batch (`storeBatch`'s `pipelined`).
   */
  pipelined?: boolean | undefined
}

/** The server is at capacity: refused before storage, explicitly; the client retries. */
export class OverloadedError extends UnavailableError {
  constructor() {
    super('the server is overloaded; message not stored, retry shortly', 1)
  }
}
const OVERLOADED = new OverloadedError()

/**
 * Transactions in flight at once. With one, the server's CPU work and PostgreSQL's alternate
 * instead of overlapping: profiled at 6,000 messages/s the server sat 40% idle while sends queued
 * (docs/performance.md). A conversation is in at most one of them, so its messages still commit
 * in the order they were sent.
 */
const IN_FLIGHT = 2
/** Held sockets resumed per batch taken while the queue is low (see `relieve`). */
const RESUME_PER_BATCH = 32

/**
 * Group commit for messages. Sends queue up while transactions are in flight; the next
 * transaction stores the whole queue (up to `maxBatch`) across conversations at once. A caller's
 * promise settles only after the transaction holding its message has committed, so an ack is
 * never ahead of the database.
 *
 * Per conversation, `seq` is assigned under the conversation row's lock (`FOR UPDATE`, taken
 * in id order so batches on several instances cannot deadlock) and written
 * with the messages, so it is gapless and strictly increasing whatever the batch size or
 * instance count.
 */
export class MessageWriter {
  private queue: Pending[] = []
  /** Half and a quarter of the bound: reads stop at the first and go on at the second. */
  private readonly pressAt: number
  private readonly relieveAt: number
  /** Held sockets' resumes, oldest first. */
  private relief: (() => void)[] = []
  /** Sends in their own checks, not yet queued (see `admitting`). */
  private arriving = 0
  private inFlight = 0
  /** Conversations with a batch in flight. */
  private readonly busy = new Set<string>()
  /** The last scan of the queue found nothing it could start. */
  private stalled = false
  private idle: (() => void)[] = []

  private readonly maxBatch: number
  private readonly maxQueue: number
  private readonly probe: SendProbe | undefined
  private readonly pipelined: boolean

  constructor(
    private readonly db: Db,
    options: WriterOptions,
    /** Called after each commit with the newly created messages in commit (seq) order. */
    private readonly onCommitted: (
      created: MessageView[],
      membersVersion: Map<string, number>,
      threads: ThreadChange[],
    ) => void,
    /** `message.created` for each new message, written in the batch's transaction. */
    private readonly outbox?: Outbox,
  ) {
    this.maxBatch = options.maxBatch
    this.maxQueue = options.maxQueue ?? Number.POSITIVE_INFINITY
    this.pressAt = Math.ceil(this.maxQueue / 2)
    this.relieveAt = Math.floor(this.maxQueue / 4)
    this.probe = options.probe
    this.pipelined = options.pipelined === true
  }

  /**
   * Half the bound is reached: sockets should stop being read until `whenRelieved`. Refusing
   * costs a parse and an error frame per send; past saturation that work, at the clients' rate,
   * starved the accepted sends (issue 17). Not reading costs nothing: TCP holds the excess.
   */
  get pressed(): boolean {
    return this.queue.length + this.arriving >= this.pressAt
  }

  /**
   * Runs a send's own checks (rate limit, attachments) counted as arriving: their awaits can
   * span several socket reads, so the queue alone lags behind what was read (see `pressed`).
   */
  async admitting<T>(checks: () => Promise<T>): Promise<T> {
    this.arriving++
    try {
      return await checks()
    } finally {
      this.arriving--
    }
  }

  /** Calls `resume` once the queue is down to a quarter of the bound (at once if it already is). */
  whenRelieved(resume: () => void): void {
    if (this.queue.length <= this.relieveAt) resume()
    else this.relief.push(resume)
  }

  /** Sends waiting for a transaction. */
  get depth(): number {
    return this.queue.length
  }

  /** The queue is at its bound: a send now would be refused. */
  get full(): boolean {
    return this.queue.length >= this.maxQueue
  }

  /**
   * The error a send refused at the bound gets (counted as shed). One shared instance: under
   * overload refusals are most of the sends, and capturing a stack for each was 8% of the
   * server's CPU in a profile past saturation.
   */
  refuse(): OverloadedError {
    this.probe?.shed('queue_full')
    return OVERLOADED
  }

  /** `receivedAt`: when the send arrived (`performance.now()`), for the stage timings. */
  append(req: SendRequest, receivedAt?: number): Promise<SendResult> {
    if (this.full) return Promise.reject(this.refuse())
    return new Promise((resolve, reject) => {
      const queuedAt = performance.now()
      this.queue.push({ req, resolve, reject, receivedAt: receivedAt ?? queuedAt, queuedAt })
      // After a scan found only busy conversations, a send to a busy one cannot start either.
      if (!(this.stalled && this.busy.has(req.conversationId))) this.pump()
    })
  }

  /** Resolves once every queued send has settled (graceful shutdown). */
  async flushed(): Promise<void> {
    if (this.inFlight === 0 && this.queue.length === 0) return
    await new Promise<void>((resolve) => this.idle.push(resolve))
  }

  private pump(): void {
    while (this.inFlight < IN_FLIGHT && this.queue.length > 0) {
      const batch = this.takeBatch()
      this.stalled = batch.length === 0
      if (this.stalled) return
      this.relieve()
      const convs = new Set(batch.map((p) => p.req.conversationId))
      for (const c of convs) this.busy.add(c)
      this.inFlight++
      if (this.probe) this.queued(batch, performance.now())
      void this.commitBatch(batch).finally(() => {
        for (const c of convs) this.busy.delete(c)
        this.stalled = false
        this.inFlight--
        this.pump()
        this.relieve()
        if (this.inFlight === 0 && this.queue.length === 0) for (const done of this.idle.splice(0)) done()
      })
    }
  }

  /**
   * Resumes held sockets once the queue is low: a few per batch, oldest first (resumed all at
   * once, each reads what piled up in its TCP buffer and together they overfill the queue,
   * refusals again), and all of them once nothing is queued or in flight.
   */
  private relieve(): void {
    if (this.relief.length === 0 || this.queue.length > this.relieveAt) return
    const idle = this.inFlight === 0 && this.queue.length === 0
    for (const resume of this.relief.splice(0, idle ? this.relief.length : RESUME_PER_BATCH)) resume()
  }

  /**
   * The oldest queued sends (up to `maxBatch`) whose conversation has no batch in flight. A send
   * left behind keeps every later send of its conversation behind it, so per conversation the
   * queue stays first in, first out.
   */
  private takeBatch(): Pending[] {
    const batch: Pending[] = []
    const rest: Pending[] = []
    const blocked = new Set<string>()
    for (const p of this.queue) {
      const c = p.req.conversationId
      if (batch.length < this.maxBatch && !this.busy.has(c) && !blocked.has(c)) batch.push(p)
      else {
        rest.push(p)
        blocked.add(c)
      }
    }
    this.queue = rest
    return batch
  }

  private async commitBatch(batch: Pending[]): Promise<void> {
    let result: BatchOutcomes
    let results: (SendResult | AppError)[]
    const recording = this.outbox?.wants('message.created') === true
    const started = performance.now()
    try {
      let recorded: Promise<void> | undefined
      ;[result, results] = await this.db.transaction(async (tx) => {
        const stored = await storeBatch(
          tx,
          batch.map((p) => p.req),
          { pipelined: this.pipelined },
        )
        const views = viewsOf(stored)
        // Pipelined, the events' insert is started (not awaited) behind the messages' insert,
        // and the COMMIT follows both; otherwise each waits for the one before.
        recorded = recording ? this.recordCreated(tx, views) : undefined
        if (stored.inserted) recorded?.catch(() => {})
        else await recorded
        return [stored, views] as const
      })
      await result.inserted
      await recorded
    } catch (err) {
      if (batch.length > 1 && !isDatabaseUnavailable(err)) {
        // One bad request (or a concurrent duplicate on another instance) must not fail its
        // neighbours: store them one by one.
        for (const p of batch) await this.commitBatch([p])
        return
      }
      const error = isDatabaseUnavailable(err)
        ? new UnavailableError('the database is unavailable; message not stored')
        : err
      for (const p of batch) p.reject(error)
      return
    }
    const { membersVersion, threads } = result
    const created = results
      .filter((o): o is SendResult => !(o instanceof AppError) && o.created)
      .map((o) => o.message)
    const committed = this.probe ? performance.now() : 0
    if (created.length > 0) this.onCommitted(created, membersVersion, threads)
    if (recording && created.length > 0) this.outbox?.committed()
    batch.forEach((p, i) => {
      const o = results[i]
      if (o instanceof AppError) p.reject(o)
      else if (o) p.resolve(o)
    })
    if (this.probe) this.committed(batch, started, committed)
  }

  private queued(batch: Pending[], started: number): void {
    const probe = this.probe as SendProbe
    probe.batch(batch.length)
    for (const p of batch) {
      probe.stage('receive', (p.queuedAt - p.receivedAt) / 1000)
      probe.stage('queue', (started - p.queuedAt) / 1000)
    }
  }

  /**
   * Transaction and publish times of a batch, then (in the next check phase, after the sockets
   * corked for this turn were written: `ws/outbound.ts`) the write and each message's total.
   */
  private committed(batch: Pending[], started: number, committed: number): void {
    const probe = this.probe as SendProbe
    const published = performance.now()
    probe.stage('transaction', (committed - started) / 1000)
    probe.stage('publish', (published - committed) / 1000)
    setImmediate(() => {
      const written = performance.now()
      probe.stage('write', (written - published) / 1000)
      for (const p of batch) probe.stage('total', (written - p.receivedAt) / 1000)
    })
  }

  /** One `message.created` per new message, all in one insert: the hot path's whole cost. */
  private async recordCreated(tx: Db, results: (SendResult | AppError)[]): Promise<void> {
    const created = results.filter((o): o is SendResult => !(o instanceof AppError) && o.created)
    if (created.length === 0) return
    await this.outbox?.record(
      tx,
      created.map(({ message }) => ({
        type: 'message.created' as const,
        conversationId: message.conversation_id,
        data: { conversation_id: message.conversation_id, message },
      })),
    )
  }
}

/** The view of each outcome: built once, shared by the outbox, the ack, the answer and the event. */
function viewsOf({ outcomes }: BatchOutcomes): (SendResult | AppError)[] {
  return outcomes.map((o) =>
    o instanceof AppError ? o : { message: toMessageView(o.message, noExtras(o.parent)), created: o.created },
  )
}
