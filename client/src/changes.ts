import { ChatError } from './errors.js'
import type { CursorStore } from './types.js'

export interface ChangeDeps {
  store: CursorStore
  error(err: ChatError): void
}

/**
 * Per conversation, the change position: the highest `change_seq` up to which this device has
 * applied every change to the messages it holds (docs/client.md, "Changes to messages you already
 * have"). Sent in `sync` as `changes`; the server then re-sends every message at or below the
 * cursor that changed after it (`message.changed`, then `changes.synced`).
 *
 * The position moves by `changes.synced`, and by live change events while they come without a
 * gap (every member gets every change of a conversation, numbered one by one): a change seen past
 * a gap is remembered, and the position jumps over it once the gap is filled. A missed event
 * leaves the position where it was, so the next `sync` re-sends what followed it.
 */
export class ChangePositions {
  private userId = ''
  private readonly positions = new Map<string, number>()
  /** Changes seen above the position, waiting for the gap below them. */
  private readonly ahead = new Map<string, Set<number>>()
  private writes: Promise<void> = Promise.resolve()

  constructor(private readonly deps: ChangeDeps) {}

  async load(userId: string): Promise<void> {
    this.userId = userId
    this.positions.clear()
    this.ahead.clear()
    const stored = (await this.deps.store.loadChanges?.(userId)) ?? {}
    for (const [id, n] of Object.entries(stored)) if (!this.positions.has(id)) this.positions.set(id, n)
  }

  position(conversationId: string): number | undefined {
    return this.positions.get(conversationId)
  }

  /**
   * First sight of a conversation (the list, or a conversation created now): what this device
   * holds of it was read after `changeSeq`, so changes up to there are in it. Never moves back.
   */
  baseline(conversationId: string, changeSeq: number): void {
    if (!this.positions.has(conversationId)) this.set(conversationId, changeSeq)
  }

  /**
   * What `sync` sends as `changes`: the position of each conversation resumed. One without a
   * position yet (joined since) starts at its conversation list entry's `change_seq` (`listed`).
   */
  forSync(
    cursors: Record<string, number>,
    listed: (id: string) => number | undefined,
  ): Record<string, number> {
    const out: Record<string, number> = {}
    for (const id of Object.keys(cursors)) {
      const known = listed(id)
      if (known !== undefined) this.baseline(id, known)
      const p = this.positions.get(id)
      if (p !== undefined) out[id] = p
    }
    return out
  }

  /** A live change event (or `message.changed`) with this change number was applied. */
  noted(conversationId: string, changeSeq: number): void {
    const at = this.positions.get(conversationId)
    if (at === undefined || changeSeq <= at) return
    let ahead = this.ahead.get(conversationId)
    if (!ahead) {
      ahead = new Set()
      this.ahead.set(conversationId, ahead)
    }
    ahead.add(changeSeq)
    this.advance(conversationId, at)
  }

  /** `changes.synced`: every change up to `changeSeq` is applied. */
  synced(conversationId: string, changeSeq: number): void {
    const at = Math.max(this.positions.get(conversationId) ?? 0, changeSeq)
    this.advance(conversationId, at, true)
  }

  forget(conversationId: string): void {
    this.positions.delete(conversationId)
    this.ahead.delete(conversationId)
  }

  /** Resolves once every position written so far reached the store. */
  flushed(): Promise<void> {
    return this.writes
  }

  private advance(conversationId: string, from: number, force = false): void {
    const ahead = this.ahead.get(conversationId)
    let at = from
    while (ahead?.delete(at + 1)) at++
    if (ahead) for (const n of ahead) if (n <= at) ahead.delete(n)
    if (ahead?.size === 0) this.ahead.delete(conversationId)
    if (force || at !== this.positions.get(conversationId)) this.set(conversationId, at)
  }

  private set(conversationId: string, changeSeq: number): void {
    this.positions.set(conversationId, changeSeq)
    const { userId } = this
    const store = this.deps.store
    if (!store.setChange) return
    this.writes = this.writes
      .then(() => store.setChange?.(userId, conversationId, changeSeq))
      .then(
        () => undefined,
        (err: unknown) => this.deps.error(new ChatError('storage', `cursor store: ${String(err)}`)),
      )
  }
}
