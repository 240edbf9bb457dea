import { Emitter } from './emitter.js'
import { expiredCopy } from './protocol.js'
import type { Message } from './rest-types.js'
import type { MessageChangedEvent, OutboxEntry } from './types.js'

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

  /** Messages the conversation's retention expired (`messages.expired`): shown as tombstones. */
  expired(seqs: readonly number[], expiredAt: string): void {
    let any = false
    for (const seq of seqs) {
      const existing = this.bySeq.get(seq)
      if (!existing || existing.deleted_at !== null) continue
      this.bySeq.set(seq, expiredCopy(existing, expiredAt))
      any = true
    }
    if (any) this.reorder()
  }

  /** A change to a message (see MessageChangedEvent): applied to the copy shown when newer. */
  changed(e: MessageChangedEvent): void {
    const existing = this.bySeq.get(e.seq)
    if (!existing || existing.id !== e.messageId || e.changeSeq <= existing.change_seq) return
    this.bySeq.set(e.seq, { ...existing, ...e.changes, change_seq: e.changeSeq })
    this.reorder()
  }

  /**
   * Reads again what is shown (after `changes.synced` with `complete: false`: too many changes
   * to re-send): drops the stored messages and loads the newest page, as many as were shown (up to 100).
   */
  reload(): Promise<number> {
    const shown = Math.min(Math.max(this.bySeq.size, 1), 100)
    this.bySeq.clear()
    this.oldest = undefined
    this.older = true
    this.reorder()
    return this.loadOlder(shown)
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

/** A later change replaces the copy shown (edit, delete, reactions…); an older copy arriving late does not. */
function newer(a: Message, b: Message): boolean {
  if (a.change_seq !== b.change_seq) return a.change_seq > b.change_seq
  const stamp = (m: Message) => m.deleted_at ?? m.edited_at ?? ''
  if (a.deleted_at && !b.deleted_at) return true
  if (b.deleted_at && !a.deleted_at) return false
  return stamp(a) > stamp(b)
}

/** The timelines open, per conversation: where the client hands what it learns about messages. */
export class OpenTimelines {
  private readonly byConversation = new Map<string, Set<Timeline>>()

  /** A new timeline of the conversation, reading pages and unsent entries through `source`. */
  open(conversationId: string, source: Omit<TimelineSource, 'subscribe'>): Timeline {
    return new Timeline(conversationId, {
      ...source,
      subscribe: (id, t) => {
        const set = this.byConversation.get(id) ?? new Set()
        this.byConversation.set(id, set.add(t))
        return () => set.delete(t)
      },
    })
  }

  each(conversationId: string, act: (t: Timeline) => unknown): void {
    for (const t of this.byConversation.get(conversationId) ?? []) act(t)
  }
}
