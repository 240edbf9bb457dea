import type { MessageView } from '../services/views.js'

export interface FeedSource {
  /** Committed messages after `afterSeq`, ascending, at most `limit`. */
  after(afterSeq: number, limit: number): Promise<MessageView[]>
}

export interface FeedSink {
  /**
   * Delivers one message. A `replay` (read from the store) may return a promise that resolves
   * when the socket has written it, to pace large replays; a live one is never waited for.
   */
  deliver(message: MessageView, replay: boolean): Promise<void> | void
  onError(err: unknown): void
}

const PAGE = 100
/** Fresh reads that may fail to find the gap before a held message before it is given up on. */
const MAX_EMPTY_READS = 3
/** Live messages held while a fill runs; past this they are dropped and read back from the store. */
const MAX_HELD = 1000

/**
 * One socket's view of one conversation: delivers each message exactly once, in `seq` order,
 * whatever order live events arrive in and however far behind the client starts.
 *
 * A message is delivered when its seq is the next one; one that arrives early is held, and the
 * gap is filled from the store. That works because `seq` is assigned under the conversation's
 * row lock: once seq N is committed, every seq below N is committed too. Resume is the same
 * mechanism: start `lastSeq` at the client's cursor and fill.
 *
 * A paused feed (a user socket opened with `?resume=true`, waiting for the client's `sync`) drops
 * live messages: they are committed, so `start` reads them back from the store in order.
 */
export class ConversationFeed {
  private readonly held = new Map<number, MessageView>()
  /** Edits and deletes of messages not delivered yet: the newer version goes out in their place. */
  private readonly amended = new Map<number, MessageView>()
  /** Sends waiting for the message they are about (see `whenDelivered`), by its seq. */
  private readonly waiting = new Map<number, (() => void)[]>()
  private filling = false
  private closed = false
  /** Set when the cursor moves back or held messages are dropped during a fill: read again. */
  private reread = false
  /** This socket has sent (or is sending) every seq in (floor, lastSeq], and none at or below floor. */
  private floor: number
  /** The last seq this socket may receive (its user was removed at it); see `finishAt`. */
  private end = Number.POSITIVE_INFINITY
  private onFinished: (() => void) | undefined

  constructor(
    private lastSeq: number,
    private readonly source: FeedSource,
    private readonly sink: FeedSink,
    private paused = false,
  ) {
    this.floor = lastSeq
  }

  get position(): number {
    return this.lastSeq
  }

  /** A live message from the broker. */
  push(message: MessageView): void {
    if (this.closed || this.paused || message.seq <= this.lastSeq || message.seq > this.end) return
    if (message.seq === this.lastSeq + 1 && !this.filling) {
      void this.emit(message, false)
      this.release(false)
      this.finishIfDone()
      return
    }
    if (this.held.size >= MAX_HELD) {
      // A fill is stuck behind a slow socket: keep memory flat, the store has them all.
      this.held.clear()
      this.reread = true
      return
    }
    this.held.set(message.seq, message)
    if (!this.filling) void this.fill()
  }

  /** Ends a pause: delivers everything committed since the feed's position, then live ones. */
  start(): Promise<void> {
    if (!this.paused) return Promise.resolve()
    this.paused = false
    return this.fill()
  }

  /**
   * The client has every message up to `seq`: delivers the ones after it that this socket has not
   * sent, each once. When the socket has sent none yet, the cursor simply moves back and the feed
   * catches up in order. When live messages already went out (they raced the client's `sync`), the
   * older ones follow them rather than repeat them.
   */
  resumeFrom(seq: number): Promise<void> {
    if (seq >= this.floor) return this.fill()
    if (this.lastSeq === this.floor) {
      this.lastSeq = seq
      this.floor = seq
      this.reread = true
      return this.fill()
    }
    const upTo = this.floor
    this.floor = seq
    return this.backfill(seq, upTo)
  }

  /**
   * An edit or delete. Returns true when the socket already has the message (send the event now);
   * otherwise the message will go out in its newest version when its turn comes, since a copy held
   * or read before the change would be stale.
   */
  amend(m: MessageView): boolean {
    if (m.seq <= this.lastSeq) return true
    if (this.closed) return false
    // Always remembered apart from any held copy: a fill may have read the message before the
    // change, and `emit` sends the newest of what it was given and what was remembered.
    const held = this.held.get(m.seq)
    if (held) this.held.set(m.seq, newest(held, m))
    this.amended.set(m.seq, newest(this.amended.get(m.seq), m))
    return false
  }

  /**
   * Runs `send` (an event about the message with `seq`: reactions, thread, pin) once this socket
   * has the message: at once when it has, right after the message otherwise, and never when the
   * message never goes out (past a removal). So such an event never reaches a client before the
   * message it is about, and nothing about a message the user may not see reaches them.
   */
  whenDelivered(seq: number, send: () => void): void {
    if (seq <= this.lastSeq) {
      send()
      return
    }
    if (this.closed || seq > this.end) return
    const list = this.waiting.get(seq)
    if (list) list.push(send)
    else this.waiting.set(seq, [send])
  }

  /**
   * The user was removed at `seq`: deliver everything up to it (reading from the store what has
   * not arrived live), nothing after it, then call `done` and close. Every message up to a removal
   * was committed while the user was a member, so they get all of it, whatever the feed was doing.
   */
  finishAt(seq: number, done: () => void): void {
    this.end = Math.min(this.end, seq)
    this.onFinished = done
    for (const s of this.held.keys()) if (s > this.end) this.held.delete(s)
    for (const s of this.waiting.keys()) if (s > this.end) this.waiting.delete(s)
    if (!this.finishIfDone()) void this.fill()
  }

  close(): void {
    this.closed = true
    this.held.clear()
    this.amended.clear()
    this.waiting.clear()
  }

  /** Reads from the store until caught up with everything held. Only one fill runs at a time. */
  async fill(): Promise<void> {
    if (this.filling || this.paused) return
    this.filling = true
    let emptyReads = 0
    try {
      while (!this.closed) {
        this.reread = false
        const page = await this.source.after(this.lastSeq, PAGE)
        let pending: Promise<void> | undefined
        for (const m of page) {
          if (this.closed) return
          if (m.seq === this.lastSeq + 1 && m.seq <= this.end) pending = this.emit(m, true) ?? undefined
        }
        // Pace by the socket: wait for the page to be written before reading the next.
        if (pending) await pending
        this.release(true)
        if (this.finishIfDone()) return
        if (this.reread || page.length === PAGE) continue
        // Finishing, and the store has nothing more for this user up to the end (what is still
        // held sits past a gap the store cannot fill): stop rather than wait forever.
        if (this.onFinished) {
          this.finish()
          return
        }
        if (this.held.size === 0) return
        // A held message is committed, and so is every seq below it; a read that started before
        // its commit may have missed them, a fresh one will not.
        emptyReads = page.length === 0 ? emptyReads + 1 : 0
        if (emptyReads >= MAX_EMPTY_READS) {
          this.held.clear()
          return
        }
      }
    } catch (err) {
      // The client is told to `sync`; retrying here could spin while the database is down.
      this.held.clear()
      this.sink.onError(err)
    } finally {
      this.filling = false
      // A live message may have arrived past a gap while the last page was being written.
      if (this.held.size > 0 && !this.closed) queueMicrotask(() => void this.fill())
    }
  }

  /** Sends (after, upTo] from the store: older messages this socket never sent. */
  private async backfill(from: number, upTo: number): Promise<void> {
    let after = from
    try {
      while (!this.closed && after < upTo) {
        const page = await this.source.after(after, Math.min(PAGE, upTo - after))
        if (page.length === 0) return
        let pending: Promise<void> | undefined
        for (const m of page) {
          if (this.closed || m.seq > upTo) return
          pending = this.sink.deliver(m, true) ?? undefined
          after = m.seq
        }
        if (pending) await pending
      }
    } catch (err) {
      // Undo the claim so that a retried `sync` sends the range again: a repeat beats a gap. An
      // overlapping sync may have lowered the floor meanwhile; it must still come back up to here.
      this.floor = Math.max(this.floor, upTo)
      this.sink.onError(err)
    }
  }

  /** Finishes once everything up to the end has gone out; true when it did. */
  private finishIfDone(): boolean {
    if (!this.onFinished || this.paused || this.lastSeq < this.end) return false
    this.finish()
    return true
  }

  private finish(): void {
    const done = this.onFinished
    this.onFinished = undefined
    this.close()
    done?.()
  }

  private emit(m: MessageView, replay: boolean): Promise<void> | void {
    this.lastSeq = m.seq
    this.held.delete(m.seq)
    const latest = newest(this.amended.get(m.seq), m)
    this.amended.delete(m.seq)
    const delivered = this.sink.deliver(latest, replay)
    const after = this.waiting.get(m.seq)
    if (after) {
      this.waiting.delete(m.seq)
      for (const send of after) send()
    }
    return delivered
  }

  /** Delivers held messages that are now next in line (`replay`: as part of a fill). */
  private release(replay: boolean): void {
    for (let next = this.held.get(this.lastSeq + 1); next; next = this.held.get(this.lastSeq + 1)) {
      void this.emit(next, replay)
    }
    for (const s of this.held.keys()) if (s <= this.lastSeq) this.held.delete(s)
  }
}

/** The later version of one message: the later change wins (a delete is final, else the later edit). */
function newest(a: MessageView | undefined, b: MessageView): MessageView {
  if (!a) return b
  if (a.change_seq !== b.change_seq) return a.change_seq > b.change_seq ? a : b
  if (a.deleted_at) return a
  if (b.deleted_at) return b
  return (a.edited_at ?? '') > (b.edited_at ?? '') ? a : b
}
