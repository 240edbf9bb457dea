import { Emitter } from './emitter.js'
import type { Message } from './rest-types.js'
import type { OutboxEntry } from './types.js'

export interface TimelineSource {
  /** One page of history before `beforeSeq` (newest page when undefined), ascending. */
  before(conversationId: string, beforeSeq: number | undefined, limit: number): Promise<Message[]>
  /** Pending and failed sends of this conversation, in the order they were made. */
  unsent(conversationId: string): OutboxEntry[]
  subscribe(conversationId: string, timeline: Timeline): () => void
}

export interface TimelineEvents {
  change: Timeline
}

/**
 * What a conversation's screen shows: stored messages ascending by seq, each once (history pages,
 * live deliveries and acknowledged sends merged by seq), then the sends still in the outbox.
 * `loadOlder()` pages backwards by keyset (`before_seq` = the oldest seq shown).
 */
export class Timeline {
  private readonly bySeq = new Map<number, Message>()
  private ordered: Message[] = []
  private oldest: number | undefined
  private older = true
  private loading: Promise<number> | undefined
  private readonly emitter = new Emitter<TimelineEvents>()
  private readonly unsubscribe: () => void

  constructor(
    readonly conversationId: string,
    private readonly source: TimelineSource,
  ) {
    this.unsubscribe = source.subscribe(conversationId, this)
  }

  /** Stored messages, ascending by seq. */
  get messages(): readonly Message[] {
    return this.ordered
  }

  /** Sends not yet stored (`pending`) or refused (`failed`), in compose order. */
  get unsent(): OutboxEntry[] {
    return this.source.unsent(this.conversationId).filter((e) => e.kind === 'send')
  }

  /** False once the first message of the conversation is loaded. */
  get hasOlder(): boolean {
    return this.older
  }

  on<K extends keyof TimelineEvents>(event: K, listener: (payload: TimelineEvents[K]) => void): () => void {
    return this.emitter.on(event, listener)
  }

  /** Loads the page before the oldest message shown (the newest page first); resolves with how many came. */
  loadOlder(limit = 50): Promise<number> {
    this.loading ??= this.readPage(limit).finally(() => {
      this.loading = undefined
    })
    return this.loading
  }

  /** Stops following the conversation. */
  dispose(): void {
    this.unsubscribe()
  }

  /** A stored message (delivered, acknowledged, edited or deleted): shown once, at its seq. */
  put(message: Message): void {
    const existing = this.bySeq.get(message.seq)
    if (existing && !newer(message, existing)) return
    this.bySeq.set(message.seq, message)
    if (this.oldest === undefined || message.seq < this.oldest) this.oldest = message.seq
    this.reorder()
  }

  /** The outbox changed for this conversation. */
  outboxChanged(): void {
    this.emitter.emit('change', this)
  }

  private async readPage(limit: number): Promise<number> {
    if (!this.older) return 0
    const items = await this.source.before(this.conversationId, this.oldest, limit)
    for (const m of items) {
      const existing = this.bySeq.get(m.seq)
      if (!existing || newer(m, existing)) this.bySeq.set(m.seq, m)
    }
    const first = items[0]
    if (first && (this.oldest === undefined || first.seq < this.oldest)) this.oldest = first.seq
    if (items.length < limit || first?.seq === 1) this.older = false
    this.reorder()
    return items.length
  }

  private reorder(): void {
    this.ordered = [...this.bySeq.values()].sort((a, b) => a.seq - b.seq)
    this.emitter.emit('change', this)
  }
}

/** An edit or delete replaces the copy shown; an older copy arriving late does not. */
function newer(a: Message, b: Message): boolean {
  const stamp = (m: Message) => m.deleted_at ?? m.edited_at ?? ''
  if (a.deleted_at && !b.deleted_at) return true
  if (b.deleted_at && !a.deleted_at) return false
  return stamp(a) > stamp(b)
}
