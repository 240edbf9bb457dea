import type { MessageView } from '../services/views.js'

export interface FeedSource {
  /** Committed messages after `afterSeq`, ascending, at most `limit`. */
  after(afterSeq: number, limit: number): Promise<MessageView[]>
}

export interface FeedSink {
  /** Delivers one message; resolves when the socket has written it (paces large replays). */
  deliver(message: MessageView): Promise<void> | void
  onError(err: unknown): void
}

const PAGE = 100

/**
 * One socket's view of one conversation: delivers each message exactly once, in `seq` order,
 * whatever order live events arrive in and however far behind the client starts.
 *
 * A message is delivered when its seq is the next one; one that arrives early is held, and the
 * gap is filled from the store. That works because `seq` is assigned under the conversation's
 * row lock: once seq N is committed, every seq below N is committed too. Resume is the same
 * mechanism: start `lastSeq` at the client's cursor and fill.
 */
export class ConversationFeed {
  private readonly held = new Map<number, MessageView>()
  private filling = false
  private closed = false
  /** Set when the member is removed: nothing after this seq is delivered. */
  private stopAfter = Number.POSITIVE_INFINITY

  constructor(
    private lastSeq: number,
    private readonly source: FeedSource,
    private readonly sink: FeedSink,
  ) {}

  get position(): number {
    return this.lastSeq
  }

  /** A live message from the broker. */
  push(message: MessageView): void {
    if (this.closed || message.seq <= this.lastSeq || message.seq > this.stopAfter) return
    if (message.seq === this.lastSeq + 1 && !this.filling) {
      void this.emit(message)
      this.release()
      return
    }
    this.held.set(message.seq, message)
    if (!this.filling) void this.fill()
  }

  /** Moves the cursor back (a client's resume point) or leaves it; then delivers what is missing. */
  resumeFrom(seq: number): Promise<void> {
    if (seq < this.lastSeq) this.lastSeq = seq
    return this.fill()
  }

  stop(afterSeq: number): void {
    this.stopAfter = afterSeq
    for (const s of this.held.keys()) if (s > afterSeq) this.held.delete(s)
  }

  close(): void {
    this.closed = true
    this.held.clear()
  }

  /** Reads from the store until caught up with everything held. Only one fill runs at a time. */
  async fill(): Promise<void> {
    if (this.filling) return
    this.filling = true
    try {
      for (let rounds = 0; !this.closed && rounds < 1_000_000; rounds++) {
        const page = await this.source.after(this.lastSeq, PAGE)
        let pending: Promise<void> | undefined
        for (const m of page) {
          if (this.closed || m.seq > this.stopAfter) return
          if (m.seq === this.lastSeq + 1) pending = this.emit(m) ?? undefined
        }
        // Pace by the socket: wait for the page to be written before reading the next.
        if (pending) await pending
        this.release()
        const more = page.length === PAGE || this.held.size > 0
        if (!more) return
        if (page.length === 0 && this.held.size > 0 && !this.held.has(this.lastSeq + 1)) {
          // The store does not have the gap yet (should not happen: see the class comment); drop
          // what is held rather than spin, the next live message or a resume will re-fill.
          this.held.clear()
          return
        }
      }
    } catch (err) {
      this.sink.onError(err)
    } finally {
      this.filling = false
      // A live message may have arrived past a gap while the last page was being written.
      if (this.held.size > 0 && !this.closed) queueMicrotask(() => void this.fill())
    }
  }

  private emit(m: MessageView): Promise<void> | void {
    this.lastSeq = m.seq
    this.held.delete(m.seq)
    return this.sink.deliver(m)
  }

  /** Delivers held messages that are now next in line. */
  private release(): void {
    for (let next = this.held.get(this.lastSeq + 1); next; next = this.held.get(this.lastSeq + 1)) {
      if (next.seq > this.stopAfter) break
      void this.emit(next)
    }
    for (const s of this.held.keys()) if (s <= this.lastSeq) this.held.delete(s)
  }
}
