import type { MessageView } from '../../src/services/views.js'
import type { FeedSink, FeedSource } from '../../src/ws/feed.js'

/**
 * In-memory stand-ins for the two sides of a `ConversationFeed`: the store it reads committed
 * messages from, and the socket it delivers to. Both settle through promise jobs only, so
 * `drained()` (one turn of the event loop) runs everything a feed has left to do.
 */

export const CONVERSATION = '00000000-0000-4000-8000-000000000001'

/** A committed message as the store holds it (content `stored N`). */
export const msg = (seq: number, over: Partial<MessageView> = {}): MessageView => ({
  id: `00000000-0000-4000-8000-${String(seq).padStart(12, '0')}`,
  conversation_id: CONVERSATION,
  seq,
  sender_id: '00000000-0000-4000-8000-00000000abcd',
  content: `stored ${seq}`,
  client_msg_id: null,
  created_at: '2030-01-01T00:00:00.000Z',
  edited_at: null,
  deleted_at: null,
  attachments: [],
  reply_to: null,
  thread: null,
  reactions: [],
  mentions: [],
  mentions_all: false,
  pinned_at: null,
  change_seq: 0,
  ...over,
})

/** The copy of a message that the broker pushes live (content `live N`, same seq and id). */
export const live = (seq: number, over: Partial<MessageView> = {}): MessageView =>
  msg(seq, { content: `live ${seq}`, ...over })

export const range = (from: number, to: number): number[] =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)

export interface Deferred<T = void> {
  promise: Promise<T>
  resolve: (value: T) => void
}

export function deferred<T = void>(): Deferred<T> {
  let resolve!: (value: T) => void
  const promise = new Promise<T>((r) => {
    resolve = r
  })
  return { promise, resolve }
}

/** Every pending promise job has run (the fakes never wait on timers or I/O). */
export const drained = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/**
 * A conversation's committed messages. A read sees what was committed when it was made, as a
 * statement does; while `hold()` is on, reads stay unanswered until `release()`.
 */
export class MemorySource implements FeedSource {
  private readonly committed = new Map<number, MessageView>()
  /** Every read, as [afterSeq, limit]. */
  readonly reads: [number, number][] = []
  private gate: Deferred | undefined
  private readonly failures: unknown[] = []

  commit(...messages: MessageView[]): this {
    for (const m of messages) this.committed.set(m.seq, m)
    return this
  }

  commitRange(from: number, to: number): this {
    return this.commit(...range(from, to).map((s) => msg(s)))
  }

  /** The next read fails with `err` (one failure per call). */
  failNext(err: unknown): void {
    this.failures.push(err)
  }

  hold(): void {
    this.gate = deferred()
  }

  release(): void {
    this.gate?.resolve()
    this.gate = undefined
  }

  after(afterSeq: number, limit: number): Promise<MessageView[]> {
    this.reads.push([afterSeq, limit])
    const page = [...this.committed.values()]
      .filter((m) => m.seq > afterSeq)
      .sort((a, b) => a.seq - b.seq)
      .slice(0, limit)
    const failure = this.failures.length > 0 ? { err: this.failures.shift() } : undefined
    const answer = () => (failure ? Promise.reject(failure.err) : Promise.resolve(page))
    return this.gate ? this.gate.promise.then(answer) : answer()
  }
}

export interface Delivery {
  seq: number
  replay: boolean
  content: string
  message: MessageView
}

/** Records what the socket was sent. `pace` may return a promise: the socket is still writing. */
export class RecordingSink implements FeedSink {
  readonly delivered: Delivery[] = []
  readonly errors: unknown[] = []
  pace: ((m: MessageView, replay: boolean) => Promise<void> | undefined) | undefined

  deliver(message: MessageView, replay: boolean): Promise<void> | undefined {
    this.delivered.push({ seq: message.seq, replay, content: message.content, message })
    return this.pace?.(message, replay)
  }

  onError(err: unknown): void {
    this.errors.push(err)
  }

  get seqs(): number[] {
    return this.delivered.map((d) => d.seq)
  }

  get contents(): string[] {
    return this.delivered.map((d) => d.content)
  }
}
