import type { ClientFrame } from './protocol.js'
import type { PresenceEvent, TypingEvent } from './types.js'

type Timer = ReturnType<typeof setTimeout>

export interface PeerDeps {
  /** Puts a frame on the open socket; false when offline. */
  send(frame: ClientFrame): boolean
  presence(e: PresenceEvent): void
  typing(e: TypingEvent): void
  throttleMs: number
}

/**
 * Presence and typing: what peers are doing (as the server announced it) and the user's own
 * typing, throttled. Both are ephemeral: nothing here is stored or retried.
 */
export class PeerActivity {
  private readonly presenceOf = new Map<string, 'online' | 'offline'>()
  private readonly typists = new Map<string, Map<string, Timer>>()
  private readonly typingSent = new Map<string, number>()

  constructor(private readonly deps: PeerDeps) {}

  presence(userId: string): 'online' | 'offline' {
    return this.presenceOf.get(userId) ?? 'offline'
  }

  typingIn(conversationId: string): string[] {
    return [...(this.typists.get(conversationId)?.keys() ?? [])]
  }

  /** A `presence` frame. */
  announced(userId: string, status: 'online' | 'offline'): void {
    this.presenceOf.set(userId, status)
    this.deps.presence({ userId, status })
  }

  /**
   * A new socket: the server re-announces the peers online now, so anyone shown online is
   * offline until it does (a peer that left while we were away is never announced).
   */
  reconnected(): void {
    for (const [userId, status] of this.presenceOf)
      if (status === 'online') this.deps.presence({ userId, status: 'offline' })
    this.presenceOf.clear()
  }

  /** A peer's typing state; a start expires on its own if its stop never comes. */
  typed(conversationId: string, userId: string, typing: boolean): void {
    let typists = this.typists.get(conversationId)
    const timer = typists?.get(userId)
    if (!typing && timer === undefined) return
    clearTimeout(timer)
    if (typing) {
      typists ??= new Map()
      this.typists.set(conversationId, typists)
      typists.set(
        userId,
        setTimeout(() => this.typed(conversationId, userId, false), this.deps.throttleMs * 3),
      )
      if (timer !== undefined) return
    } else typists?.delete(userId)
    this.deps.typing({ conversationId, userId, typing })
  }

  /** The user typing: at most one `start` per throttle interval; a `stop` only after a start. */
  type(conversationId: string, typing: boolean): void {
    const last = this.typingSent.get(conversationId)
    if (typing) {
      if (last !== undefined && Date.now() - last < this.deps.throttleMs) return
      if (this.deps.send({ type: 'typing', conversation_id: conversationId, state: 'start' }))
        this.typingSent.set(conversationId, Date.now())
      return
    }
    if (last === undefined) return
    this.typingSent.delete(conversationId)
    this.deps.send({ type: 'typing', conversation_id: conversationId, state: 'stop' })
  }
}
