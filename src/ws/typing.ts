type State = 'start' | 'stop'

interface Indicator {
  /** Peers were told `start` and not yet `stop`. */
  shown: boolean
  /** When a `start` was last relayed (ms, the clock of `Date.now()`). */
  relayedAt: number
  /** Turns a `start` not refreshed within the TTL into a `stop`. */
  expiry: NodeJS.Timeout | undefined
  /** A `start` that came too soon after the last one, relayed once the interval has passed. */
  deferred: NodeJS.Timeout | undefined
}

/**
 * One socket's typing indicators, per conversation: relayed, never stored. Every relayed frame
 * fans out to each member's sockets, so a client toggling start/stop would otherwise cost its
 * peers one frame per keystroke. At most one `start` is relayed per `intervalMs` (a start that
 * comes too soon is relayed once the interval has passed, unless a stop came first), and a `stop`
 * only when peers were told `start`. A `start` not refreshed within `ttlMs` becomes a `stop`, and
 * closing the socket stops whatever was still shown.
 */
export class TypingIndicators {
  private readonly indicators = new Map<string, Indicator>()

  constructor(
    private readonly publish: (conversationId: string, state: State) => void,
    private readonly ttlMs: number,
    private readonly intervalMs: number,
  ) {}

  set(conversationId: string, state: State): void {
    const ind = this.indicators.get(conversationId) ?? this.create(conversationId)
    clearTimeout(ind.expiry)
    ind.expiry = undefined
    if (state === 'stop') {
      this.stop(conversationId, ind)
      return
    }
    ind.expiry = setTimeout(() => this.stop(conversationId, ind), this.ttlMs)
    if (ind.deferred) return
    const wait = ind.relayedAt + this.intervalMs - Date.now()
    if (wait <= 0) this.relayStart(conversationId, ind)
    // Already shown: peers need nothing new until the interval has passed.
    else if (!ind.shown) {
      ind.deferred = setTimeout(() => {
        ind.deferred = undefined
        this.relayStart(conversationId, ind)
      }, wait)
    }
  }

  stopAll(): void {
    for (const [conversationId, ind] of this.indicators) this.stop(conversationId, ind)
    this.indicators.clear()
  }

  private create(conversationId: string): Indicator {
    const ind: Indicator = { shown: false, relayedAt: -Infinity, expiry: undefined, deferred: undefined }
    this.indicators.set(conversationId, ind)
    return ind
  }

  private relayStart(conversationId: string, ind: Indicator): void {
    ind.shown = true
    ind.relayedAt = Date.now()
    this.publish(conversationId, 'start')
  }

  private stop(conversationId: string, ind: Indicator): void {
    clearTimeout(ind.expiry)
    clearTimeout(ind.deferred)
    ind.expiry = undefined
    ind.deferred = undefined
    if (ind.shown) {
      ind.shown = false
      this.publish(conversationId, 'stop')
    }
    // Past the interval the entry holds nothing the throttle needs: a socket typing in many
    // conversations keeps only the recent ones.
    if (Date.now() - ind.relayedAt >= this.intervalMs) this.indicators.delete(conversationId)
  }
}
