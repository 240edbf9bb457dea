type State = 'start' | 'stop'

/**
 * One socket's typing indicators: relayed at once, never stored. A `start` that is not refreshed
 * within `ttlMs` becomes a `stop`, and closing the socket stops whatever was still on.
 */
export class TypingIndicators {
  private readonly timers = new Map<string, NodeJS.Timeout>()

  constructor(
    private readonly publish: (conversationId: string, state: State) => void,
    private readonly ttlMs: number,
  ) {}

  set(conversationId: string, state: State): void {
    clearTimeout(this.timers.get(conversationId))
    this.timers.delete(conversationId)
    if (state === 'start') {
      const expire = () => {
        this.timers.delete(conversationId)
        this.publish(conversationId, 'stop')
      }
      this.timers.set(conversationId, setTimeout(expire, this.ttlMs))
    }
    this.publish(conversationId, state)
  }

  stopAll(): void {
    for (const [conversationId, timer] of this.timers) {
      clearTimeout(timer)
      this.publish(conversationId, 'stop')
    }
    this.timers.clear()
  }
}
