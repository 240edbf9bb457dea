import { v7 as uuidv7 } from 'uuid'
import { ChatError } from './errors.js'
import type { RestClient } from './rest.js'
import type { Message } from './rest-types.js'
import type { OutboxEntry, OutboxKind, OutboxStore } from './types.js'

export interface OutboxDeps {
  store: OutboxStore
  rest: RestClient
  /** Puts a `message.send` on the open socket; false when there is none. */
  sendFrame(entry: OutboxEntry): boolean
  /** Resolves when the socket is open (the network is back); `next`: at the next opening, not this one. */
  whenOpen(next?: boolean): Promise<void>
  changed(entry: OutboxEntry): void
  error(err: ChatError): void
  retryDelay(attempt: number): number
}

/** Error codes after which the same write may succeed later, unchanged. */
const TRANSIENT_CODES = new Set(['unavailable', 'rate_limited', 'internal', 'network', 'timeout'])
/**
 * Sends larger than this (UTF-8 bytes of content) go over REST: the server closes a socket whose
 * frame passes WS_MAX_FRAME_BYTES (16 KiB by default) with 1009, and would again on every retry.
 */
const SOCKET_SEND_MAX_BYTES = 8 * 1024
/** How many sent entries `settled()` still remembers. */
const RECENT_LIMIT = 1000
/** A server error ('internal') is retried this many times before the entry fails. */
const MAX_INTERNAL_RETRIES = 5

/** `lost`: no answer will come on this socket; `unsent`: it could not even be written to it. */
type Outcome =
  | { ok: true; message?: Message }
  | { ok: false; error: ChatError }
  | { lost: true; unsent?: boolean }

/**
 * The outbox: every write the user makes (send, edit, delete, read marker) as an entry that is
 * stored durably before anything goes on the wire, performed in order per conversation, retried
 * after failures and reconnects, and settled exactly once as `sent` or `failed`.
 *
 * Sends carry their client_msg_id (the entry's UUIDv7, made at compose time) on every attempt;
 * the server stores a message once per id and answers a repeat with the stored message, so a send
 * whose acknowledgement was lost with the connection is retried without being stored twice.
 * Edits, deletes and read markers go over REST (each answers with its result; all three are
 * idempotent: same content, already deleted, a marker that only moves forward).
 */
export class Outbox {
  private userId = ''
  private entries: OutboxEntry[] = []
  private readonly running = new Set<string>()
  private readonly waiting = new Map<string, (o: Outcome) => void>()
  private readonly settledWaiters = new Map<string, ((e: OutboxEntry) => void)[]>()
  private writes: Promise<void> = Promise.resolve()
  private generation = 0
  /** client_msg_id → stored message id, for edits and deletes composed after their send settled. */
  private readonly sentIds = new Map<string, string>()
  /** Recently sent entries (bounded), so `settled()` answers after the entry left the outbox. */
  private readonly recentlySent = new Map<string, OutboxEntry>()

  constructor(private readonly deps: OutboxDeps) {}

  /**
   * Binds the outbox to a user at once (sends made from now on are theirs), then merges their
   * stored entries and resumes the pending ones.
   */
  async load(userId: string): Promise<void> {
    if (userId !== this.userId) {
      this.stop()
      this.userId = userId
    }
    const generation = this.generation
    const stored = await this.deps.store.load(userId)
    if (generation !== this.generation) return
    const known = new Set(this.entries.map((e) => e.id))
    // UUIDv7 ids sort in the order the entries were made.
    this.entries = [...stored.filter((e) => !known.has(e.id)), ...this.entries].sort((a, b) =>
      a.id < b.id ? -1 : a.id > b.id ? 1 : 0,
    )
    for (const id of new Set(this.entries.map((e) => e.conversationId))) this.kick(id)
  }

  /** Stops working (sign-out); stored entries stay for the user's next session. */
  stop(): void {
    this.generation++
    this.entries = []
    for (const resolve of this.waiting.values()) resolve({ lost: true })
    this.waiting.clear()
  }

  list(conversationId?: string): OutboxEntry[] {
    return this.entries.filter((e) => conversationId === undefined || e.conversationId === conversationId)
  }

  get(id: string): OutboxEntry | undefined {
    return this.entries.find((e) => e.id === id)
  }

  /** Adds an entry (pending) and starts its conversation's queue. Returns it at once. */
  add(
    kind: OutboxKind,
    conversationId: string,
    fields: Pick<OutboxEntry, 'content' | 'messageId' | 'targetId' | 'seq'>,
  ): OutboxEntry {
    if (kind === 'read' && fields.seq !== undefined) {
      // Only the highest marker matters: raise a queued one instead of adding another.
      const queued = this.entries.find(
        (e) => e.kind === 'read' && e.conversationId === conversationId && e.status === 'pending',
      )
      if (queued && queued.attempts === 0 && !this.waiting.has(queued.id)) {
        queued.seq = Math.max(queued.seq ?? 0, fields.seq)
        this.persist(queued)
        this.deps.changed({ ...queued })
        return { ...queued }
      }
    }
    if (fields.targetId !== undefined && fields.messageId === undefined) {
      const sent = this.sentIds.get(fields.targetId)
      if (sent) fields = { ...fields, messageId: sent, targetId: undefined }
    }
    const entry: OutboxEntry = {
      id: uuidv7(),
      kind,
      conversationId,
      status: 'pending',
      createdAt: new Date().toISOString(),
      attempts: 0,
      ...definedOnly(fields),
    }
    this.entries.push(entry)
    this.persist(entry)
    this.deps.changed({ ...entry })
    this.kick(conversationId)
    return { ...entry }
  }

  /** Puts a failed entry back in the queue (a new attempt with the same id). */
  retry(id: string): void {
    const entry = this.get(id)
    if (entry?.status !== 'failed') return
    entry.status = 'pending'
    delete entry.error
    this.persist(entry)
    this.deps.changed({ ...entry })
    this.kick(entry.conversationId)
  }

  /** Drops a failed entry for good. */
  discard(id: string): void {
    const entry = this.get(id)
    if (entry?.status !== 'failed') return
    this.entries = this.entries.filter((e) => e !== entry)
    this.unpersist(entry.id)
  }

  /** Resolves with the entry once it is `sent` or `failed`. */
  settled(id: string): Promise<OutboxEntry> {
    const entry = this.get(id)
    const sent = this.recentlySent.get(id)
    if (sent) return Promise.resolve({ ...sent })
    if (!entry) return Promise.reject(new ChatError('not_found', `no outbox entry ${id}`))
    if (entry.status === 'failed') return Promise.resolve({ ...entry })
    return new Promise((resolve) => {
      const list = this.settledWaiters.get(id) ?? []
      list.push(resolve)
      this.settledWaiters.set(id, list)
    })
  }

  /** `message.ack` for one of our sends. */
  acked(clientMsgId: string, message: Message): void {
    this.waiting.get(clientMsgId)?.({ ok: true, message })
  }

  /** An `error` frame answering one of our sends. */
  refused(clientMsgId: string, code: string, message: string): void {
    this.waiting.get(clientMsgId)?.({ ok: false, error: new ChatError(code, message) })
  }

  /**
   * The socket closed: sends waiting for an answer are retried on the next one. Close code 1009
   * means a frame of ours was over the server's limit: the largest send in flight fails instead
   * (sent again, it would close every socket the same way).
   */
  connectionLost(closeCode?: number): void {
    let tooBig: string | undefined
    if (closeCode === 1009) {
      let size = -1
      for (const id of this.waiting.keys()) {
        const length = this.get(id)?.content?.length ?? 0
        if (length > size) [tooBig, size] = [id, length]
      }
    }
    for (const [id, resolve] of [...this.waiting]) {
      if (id === tooBig)
        resolve({ ok: false, error: new ChatError('too_large', 'the message is too large to send') })
      else resolve({ lost: true })
    }
    this.waiting.clear()
  }

  /** Resolves once every store write so far is done. */
  flushed(): Promise<void> {
    return this.writes
  }

  private kick(conversationId: string): void {
    if (this.running.has(conversationId)) return
    this.running.add(conversationId)
    const generation = this.generation
    void this.work(conversationId, generation)
      .catch((err: unknown) => this.deps.error(new ChatError('internal', `outbox: ${String(err)}`)))
      .finally(() => {
        this.running.delete(conversationId)
        // Something added while the worker was finishing: run again.
        if (generation === this.generation && this.next(conversationId)) this.kick(conversationId)
      })
  }

  private next(conversationId: string): OutboxEntry | undefined {
    return this.entries.find((e) => e.conversationId === conversationId && e.status === 'pending')
  }

  /** Performs the conversation's pending entries one at a time, in the order they were made. */
  private async work(conversationId: string, generation: number): Promise<void> {
    let failures = 0
    let unsent = false
    for (;;) {
      if (generation !== this.generation) return
      const entry = this.next(conversationId)
      if (!entry) return
      // A socket that refused a write is closing though not yet reported closed: wait for the next.
      await this.deps.whenOpen(unsent)
      if (generation !== this.generation) return
      const outcome = await this.attempt(entry)
      if (generation !== this.generation) return
      if ('lost' in outcome) {
        unsent = outcome.unsent === true
        continue
      }
      unsent = false
      if (outcome.ok) {
        failures = 0
        this.settle(entry, { status: 'sent', ...(outcome.message ? { message: outcome.message } : {}) })
        continue
      }
      const { error } = outcome
      const retryable =
        TRANSIENT_CODES.has(error.code) &&
        (error.code !== 'internal' || entry.attempts < MAX_INTERNAL_RETRIES)
      if (retryable) {
        this.deps.error(error)
        await sleep(this.deps.retryDelay(failures++))
        continue
      }
      if (error.code === 'session_expired') return
      failures = 0
      this.settle(entry, {
        status: 'failed',
        error: {
          code: error.code,
          message: error.message,
          ...(error.status ? { status: error.status } : {}),
        },
      })
    }
  }

  private async attempt(entry: OutboxEntry): Promise<Outcome> {
    entry.attempts++
    this.persist(entry)
    if (entry.kind === 'send' && utf8Length(entry.content ?? '') <= SOCKET_SEND_MAX_BYTES)
      return this.sendOverSocket(entry)
    try {
      return { ok: true, ...(await this.viaRest(entry)) }
    } catch (err) {
      return { ok: false, error: err instanceof ChatError ? err : new ChatError('network', String(err)) }
    }
  }

  private sendOverSocket(entry: OutboxEntry): Promise<Outcome> {
    return new Promise((resolve) => {
      this.waiting.set(entry.id, (o) => {
        this.waiting.delete(entry.id)
        resolve(o)
      })
      if (!this.deps.sendFrame(entry)) {
        this.waiting.delete(entry.id)
        resolve({ lost: true, unsent: true })
      }
    })
  }

  private async viaRest(entry: OutboxEntry): Promise<{ message?: Message }> {
    const { rest } = this.deps
    if (entry.kind === 'send') {
      // Too large for a socket frame: REST carries it (same client_msg_id, same idempotency).
      const message = await rest.post('/api/v1/chat/conversations/{id}/messages', {
        params: { id: entry.conversationId },
        body: { content: entry.content ?? '', client_msg_id: entry.id },
      })
      return { message }
    }
    if (entry.kind === 'read') {
      await rest.post('/api/v1/chat/conversations/{id}/read', {
        params: { id: entry.conversationId },
        body: { seq: entry.seq ?? 0 },
      })
      return {}
    }
    const messageId = this.target(entry)
    if (entry.kind === 'edit') {
      const message = await rest.patch('/api/v1/chat/messages/{id}', {
        params: { id: messageId },
        body: { content: entry.content ?? '' },
      })
      return { message }
    }
    const message = await rest.delete('/api/v1/chat/messages/{id}', { params: { id: messageId } })
    return { message }
  }

  /** The message an edit or delete is about; one still in the outbox was settled before (same queue). */
  private target(entry: OutboxEntry): string {
    if (entry.messageId) return entry.messageId
    throw new ChatError('conflict', 'the message this refers to was not sent')
  }

  private settle(entry: OutboxEntry, result: Pick<OutboxEntry, 'status' | 'message' | 'error'>): void {
    Object.assign(entry, result)
    if (entry.status === 'sent') {
      this.recentlySent.set(entry.id, { ...entry })
      if (this.recentlySent.size > RECENT_LIMIT) {
        const oldest = this.recentlySent.keys().next().value
        if (oldest !== undefined) this.recentlySent.delete(oldest)
      }
      this.entries = this.entries.filter((e) => e !== entry)
      this.unpersist(entry.id)
      if (entry.kind === 'send' && entry.message) {
        this.sentIds.set(entry.id, entry.message.id)
        this.resolveTargets(entry.id, entry.message.id)
      }
    } else {
      this.persist(entry)
      if (entry.kind === 'send') this.resolveTargets(entry.id, undefined)
    }
    this.deps.changed({ ...entry })
    for (const resolve of this.settledWaiters.get(entry.id) ?? []) resolve({ ...entry })
    this.settledWaiters.delete(entry.id)
  }

  /** Edits and deletes of a send that just settled learn its message id (or that it failed). */
  private resolveTargets(clientMsgId: string, messageId: string | undefined): void {
    for (const e of this.entries) {
      if (e.targetId !== clientMsgId || e.messageId) continue
      if (messageId) e.messageId = messageId
      this.persist(e)
    }
  }

  private persist(entry: OutboxEntry): void {
    const copy = { ...entry }
    const userId = this.userId
    this.write(() => this.deps.store.put(userId, copy))
  }

  private unpersist(id: string): void {
    const userId = this.userId
    this.write(() => this.deps.store.remove(userId, id))
  }

  /** Store writes run one after another, so an async store applies them in order. */
  private write(op: () => unknown): void {
    this.writes = this.writes.then(op).then(
      () => undefined,
      (err: unknown) => this.deps.error(new ChatError('storage', `outbox store: ${String(err)}`)),
    )
  }
}

function utf8Length(text: string): number {
  let bytes = 0
  for (const ch of text) {
    const cp = ch.codePointAt(0) ?? 0
    bytes += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4
  }
  return bytes
}

function definedOnly<T extends object>(fields: T): Partial<T> {
  return Object.fromEntries(Object.entries(fields).filter(([, v]) => v !== undefined)) as Partial<T>
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
