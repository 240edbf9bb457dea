import { ChatError } from './errors.js'
import type { Message } from './rest-types.js'
import type { CursorStore, DiscontinuityEvent, ResyncedEvent } from './types.js'

export interface DeliveryDeps {
  store: CursorStore
  /** History after `afterSeq`, ascending; `more` when another page follows. */
  after(conversationId: string, afterSeq: number): Promise<{ items: Message[]; more: boolean }>
  /** Hands one message to the app: called exactly once per seq, in seq order, per conversation. */
  deliver(conversationId: string, message: Message): void
  resynced(event: ResyncedEvent): void
  discontinuity(event: DiscontinuityEvent): void
  error(err: ChatError): void
  /** How long to wait before retrying a failed history read. */
  retryDelay(attempt: number): number
}

type ResyncReason = ResyncedEvent['reason']

/**
 * Exactly-once, in-order delivery per conversation. The cursor is the last seq handed to the
 * app; it is persisted after every message and sent in `sync` on every (re)connect. A message
 * above cursor+1 means something was missed: it is held, the gap is read from history (keyset,
 * `after_seq`), and delivery continues in order (`resynced`). Anything at or below the cursor is
 * a duplicate and dropped, whatever path it came by (live, replay, fill).
 */
export class Delivery {
  private userId = ''
  private readonly cursors = new Map<string, number>()
  private readonly held = new Map<string, Map<number, Message>>()
  private readonly filling = new Map<string, Promise<void>>()
  private writes: Promise<void> = Promise.resolve()
  private stopped = false

  constructor(private readonly deps: DeliveryDeps) {}

  /** Reads the user's cursors from the store (before the first connect). */
  async load(userId: string): Promise<void> {
    this.userId = userId
    this.stopped = false
    this.cursors.clear()
    this.held.clear()
    const stored = await this.deps.store.load(userId)
    // Cursors set meanwhile (a message delivered during the read) are newer than the stored ones.
    for (const [id, seq] of Object.entries(stored)) if (!this.cursors.has(id)) this.cursors.set(id, seq)
  }

  /** Stops pending fills (sign-out). */
  stop(): void {
    this.stopped = true
  }

  cursor(conversationId: string): number | undefined {
    return this.cursors.get(conversationId)
  }

  /** What `sync` sends: every cursor. */
  syncCursors(): Record<string, number> {
    return Object.fromEntries(this.cursors)
  }

  /**
   * First sight of a conversation on this device (from the conversation list): live delivery
   * starts after `lastSeq`; what came before is history, which the app pages through.
   */
  baseline(conversationId: string, lastSeq: number): void {
    if (this.cursors.has(conversationId)) {
      const cursor = this.cursors.get(conversationId) ?? 0
      if (cursor > lastSeq) {
        // The server has fewer messages than we delivered (restored from a backup?): start again there.
        this.setCursor(conversationId, lastSeq)
        this.deps.discontinuity({ conversationId, reason: 'cursor_ahead', atSeq: lastSeq })
      }
      return
    }
    this.setCursor(conversationId, lastSeq)
  }

  /** A `message.new` (or an ack's message): delivered, held for a gap fill, or dropped as a duplicate. */
  receive(conversationId: string, message: Message): void {
    if (this.stopped) return
    const cursor = this.cursors.get(conversationId)
    if (cursor === undefined) {
      // No cursor: the server's feed for this socket starts here (a conversation just joined).
      this.advance(conversationId, message)
      return
    }
    if (message.seq <= cursor) return
    if (message.seq === cursor + 1 && !this.filling.has(conversationId)) {
      this.advance(conversationId, message)
      this.drain(conversationId)
      return
    }
    this.hold(conversationId, message)
    if (!this.filling.has(conversationId)) void this.fill(conversationId, 'gap')
  }

  /**
   * Reads history after the cursor to its end and delivers it (after the server reported that it
   * could not replay what we missed). Resolves when every listed conversation is caught up.
   */
  async catchUp(reason: ResyncReason = 'resume_failed'): Promise<void> {
    await Promise.all([...this.cursors.keys()].map((id) => this.fill(id, reason)))
  }

  /** The conversation ended for this user (removed, or unknown to the server): forget its cursor. */
  forget(conversationId: string, report: boolean): void {
    const atSeq = this.cursors.get(conversationId) ?? 0
    this.cursors.delete(conversationId)
    this.held.delete(conversationId)
    const userId = this.userId
    this.write(() => this.deps.store.remove(userId, conversationId))
    if (report) this.deps.discontinuity({ conversationId, reason: 'removed', atSeq })
  }

  /** Resolves once no gap fill is running and every cursor write so far reached the store. */
  async flushed(): Promise<void> {
    while (this.filling.size > 0) await Promise.all(this.filling.values())
    await this.writes
  }

  private fill(conversationId: string, reason: ResyncReason): Promise<void> {
    const running = this.filling.get(conversationId)
    if (running) return running
    const run = this.readGap(conversationId, reason).then(
      (complete) => {
        this.filling.delete(conversationId)
        this.drain(conversationId, complete)
      },
      (err: unknown) => {
        this.filling.delete(conversationId)
        this.deps.error(new ChatError('internal', `gap fill failed: ${String(err)}`))
      },
    )
    this.filling.set(conversationId, run)
    return run
  }

  /** True when history was read to its end (then held messages may be delivered past a gap). */
  private async readGap(conversationId: string, reason: ResyncReason): Promise<boolean> {
    const fromSeq = this.cursors.get(conversationId)
    if (fromSeq === undefined) return false
    let failures = 0
    for (;;) {
      if (this.stopped || !this.cursors.has(conversationId)) return false
      const cursor = this.cursors.get(conversationId) ?? 0
      let page: { items: Message[]; more: boolean }
      try {
        page = await this.deps.after(conversationId, cursor)
      } catch (err) {
        const error = err instanceof ChatError ? err : new ChatError('network', String(err))
        if (error.status === 404 || error.code === 'not_found') {
          // No longer a member: what it could deliver up to the removal arrives over the socket.
          return false
        }
        this.deps.error(error)
        // Held messages stay held: the next gap, or the next connection's replay, tries again.
        if (!error.transient) return false
        await sleep(this.deps.retryDelay(failures++))
        continue
      }
      // History is authoritative: it may skip seqs this user cannot see, so accept any ascending item.
      for (const m of page.items) {
        if (m.seq > (this.cursors.get(conversationId) ?? 0)) this.advance(conversationId, m)
      }
      if (!page.more || page.items.length === 0) break
    }
    const toSeq = this.cursors.get(conversationId) ?? fromSeq
    if (toSeq !== fromSeq || reason === 'gap') this.deps.resynced({ conversationId, fromSeq, toSeq, reason })
    return true
  }

  private hold(conversationId: string, message: Message): void {
    let held = this.held.get(conversationId)
    if (!held) {
      held = new Map()
      this.held.set(conversationId, held)
    }
    held.set(message.seq, message)
  }

  /**
   * Delivers held messages that are next in line. After history was read to its end (`pastGaps`),
   * all of them: that read began after they arrived, so it covered every seq below them that this
   * user may see, and what is still missing does not exist for them.
   */
  private drain(conversationId: string, pastGaps = false): void {
    const held = this.held.get(conversationId)
    if (!held || this.filling.has(conversationId)) return
    for (const seq of [...held.keys()].sort((a, b) => a - b)) {
      const cursor = this.cursors.get(conversationId) ?? 0
      const m = held.get(seq)
      if (!m || seq <= cursor) {
        held.delete(seq)
        continue
      }
      if (seq !== cursor + 1 && !pastGaps) break
      held.delete(seq)
      this.advance(conversationId, m)
    }
    if (held.size === 0) this.held.delete(conversationId)
  }

  private advance(conversationId: string, message: Message): void {
    this.setCursor(conversationId, message.seq)
    this.deps.deliver(conversationId, message)
  }

  private setCursor(conversationId: string, seq: number): void {
    this.cursors.set(conversationId, seq)
    const userId = this.userId
    this.write(() => this.deps.store.set(userId, conversationId, seq))
  }

  /** Store writes run one after another, so an async store cannot apply them out of order. */
  private write(op: () => unknown): void {
    this.writes = this.writes.then(op).then(
      () => undefined,
      (err: unknown) => this.deps.error(new ChatError('storage', `cursor store: ${String(err)}`)),
    )
  }
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms))
