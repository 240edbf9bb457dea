import { defaultFetch } from './dialer.js'
import { MemoryCursorStore, MemoryOutboxStore, MemoryTokenStore } from './stores.js'
import type { ChatClientOptions, WebSocketConstructor } from './types.js'

export type ResolvedOptions = Required<Omit<ChatClientOptions, 'WebSocket'>> & {
  WebSocket: WebSocketConstructor | undefined
}

/** The options with their defaults (docs/client.md lists them). */
export function resolveOptions(options: ChatClientOptions): ResolvedOptions {
  return {
    tokenStore: new MemoryTokenStore(),
    cursorStore: new MemoryCursorStore(),
    outboxStore: new MemoryOutboxStore(),
    fetch: defaultFetch(),
    socketAuth: 'ticket',
    backoff: {},
    heartbeat: {},
    requestTimeoutMs: 15_000,
    typingThrottleMs: 3_000,
    refreshAheadMs: 30_000,
    random: Math.random,
    ...options,
    WebSocket: options.WebSocket,
  }
}
