import { ChatError } from './errors.js'
import { type ClientFrame, CloseCode, parseServerFrame, type ServerFrame } from './protocol.js'
import type {
  ClosedReason,
  ConnectionState,
  StateChange,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js'

type Timer = ReturnType<typeof setTimeout>

export interface ConnectionDeps {
  /** The URL (and subprotocols) for the next attempt: fetches a ticket, or uses the bearer pair. */
  dial(): Promise<{ url: string; protocols?: string[] }>
  WebSocket(): Promise<WebSocketConstructor>
  /** The socket said `ready`: send `sync` and anything queued. */
  opened(): void
  frame(frame: ServerFrame): void
  state(change: StateChange): void
  /** Close code 4401: refresh the session; false when it has ended (then the socket stays closed). */
  reauthenticate(): Promise<boolean>
  random(): number
  backoff: { baseMs: number; capMs: number }
  heartbeat: { intervalMs: number; timeoutMs: number }
}

/** A dial that failed for good (no session): the socket closes instead of retrying. */
export class FatalDialError extends ChatError {}

/**
 * The one user socket and its state machine:
 *
 *   closed ──start()──▶ connecting ──ready──▶ open
 *      ▲                  │    ▲              │ socket lost / silent / 1001 / 1013 / 4401
 *      │                  ▼    │ timer        ▼
 *      └── stop() / 1008 / 4403 / session ended ◀── reconnecting
 *
 * Reconnects wait a full-jitter backoff, random(0, min(cap, base·2^attempt)), the attempt
 * counting from the last time the socket was open. A socket that is silent past the heartbeat
 * timeout is abandoned (a stalled TCP connection may never deliver its close) and replaced.
 */
export class Connection {
  state: ConnectionState = 'closed'
  closedReason: ClosedReason = 'not_started'
  private socket: WebSocketLike | undefined
  private attempt = 0
  private retryTimer: Timer | undefined
  private watchdog: Timer | undefined
  private lastHeard = 0
  private lastPing = 0
  /** Bumped per socket: handlers of an abandoned socket see a stale generation and do nothing. */
  private generation = 0

  constructor(private readonly deps: ConnectionDeps) {}

  /** Starts connecting (no-op unless closed). */
  start(): void {
    if (this.state !== 'closed') return
    this.attempt = 0
    void this.dial()
  }

  /** Closes the socket and stays closed. */
  stop(reason: ClosedReason = 'disconnected'): void {
    clearTimeout(this.retryTimer)
    this.abandon(CloseCode.Normal, 'client closed')
    if (this.state === 'closed') return
    this.closedReason = reason
    this.enter('closed', { reason })
  }

  /** Sends a frame when open; false when there is no open socket (the caller keeps it). */
  send(frame: ClientFrame): boolean {
    if (this.state !== 'open' || !this.socket || this.socket.readyState !== 1) return false
    try {
      this.socket.send(JSON.stringify(frame))
      return true
    } catch {
      return false
    }
  }

  /** The network is back (the browser's `online` event): skip the rest of the backoff. */
  nudge(): void {
    if (this.state !== 'reconnecting') return
    clearTimeout(this.retryTimer)
    this.attempt = 0
    void this.dial()
  }

  /** Drops the current socket and reconnects (e.g. after a resume failure the app wants redone). */
  reconnect(): void {
    if (this.state === 'closed') return
    this.lost(undefined, new ChatError('network', 'reconnect requested'))
  }

  private async dial(): Promise<void> {
    const generation = ++this.generation
    this.enter('connecting')
    let target: { url: string; protocols?: string[] }
    let Ctor: WebSocketConstructor
    try {
      ;[target, Ctor] = await Promise.all([this.deps.dial(), this.deps.WebSocket()])
    } catch (err) {
      if (generation !== this.generation) return
      if (err instanceof FatalDialError) return this.stop('session_expired')
      if (err instanceof ChatError && err.code === 'session_expired') return this.stop('session_expired')
      return this.retry(undefined, asChatError(err))
    }
    if (generation !== this.generation) return
    let socket: WebSocketLike
    try {
      socket = new Ctor(target.url, target.protocols)
    } catch (err) {
      return this.retry(undefined, asChatError(err))
    }
    this.socket = socket
    this.lastHeard = Date.now()
    this.armWatchdog(generation)
    socket.onmessage = (ev) => {
      if (generation !== this.generation) return
      this.lastHeard = Date.now()
      const frame = parseServerFrame(ev.data)
      if (!frame) return
      if (frame.type === 'ready') {
        this.attempt = 0
        this.enter('open')
        this.deps.opened()
      }
      this.deps.frame(frame)
    }
    socket.onclose = (ev) => {
      if (generation !== this.generation) return
      this.closed(ev.code, ev.reason)
    }
    socket.onerror = () => {
      // Always followed by close, which decides what happens next.
    }
  }

  private closed(code: number, reason: string): void {
    this.socket = undefined
    clearTimeout(this.watchdog)
    const error = new ChatError('network', `socket closed (${code}${reason ? `: ${reason}` : ''})`)
    if (code === CloseCode.Forbidden || code === CloseCode.PolicyViolation) {
      this.stop(code === CloseCode.Forbidden ? 'forbidden' : 'policy_violation')
      return
    }
    if (code === CloseCode.Unauthorized) {
      this.enter('reconnecting', { closeCode: code, error, retryInMs: 0 })
      const generation = ++this.generation
      void this.deps.reauthenticate().then(
        (ok) => {
          if (generation !== this.generation) return
          if (ok) void this.dial()
          else this.stop('session_expired')
        },
        (err: unknown) => {
          if (generation === this.generation) this.retry(code, asChatError(err))
        },
      )
      return
    }
    // 1001 (server going away), 1013 (we read too slowly), 1006 (network), anything else: resume.
    this.retry(code, error)
  }

  /** The socket is gone or unusable: forget it and reconnect after the backoff. */
  private lost(code: number | undefined, error: ChatError): void {
    this.abandon(4000, 'abandoned by the client')
    this.retry(code, error)
  }

  private retry(code: number | undefined, error: ChatError): void {
    if (this.state === 'closed') return
    const ceiling = Math.min(this.deps.backoff.capMs, this.deps.backoff.baseMs * 2 ** this.attempt)
    const delay = Math.floor(this.deps.random() * ceiling)
    this.attempt++
    const generation = ++this.generation
    this.enter('reconnecting', {
      retryInMs: delay,
      error,
      ...(code !== undefined ? { closeCode: code } : {}),
    })
    clearTimeout(this.retryTimer)
    this.retryTimer = setTimeout(() => {
      if (generation === this.generation) void this.dial()
    }, delay)
  }

  /** Detaches and closes the current socket without waiting for its close handshake. */
  private abandon(code: number, reason: string): void {
    this.generation++
    clearTimeout(this.watchdog)
    const socket = this.socket
    this.socket = undefined
    if (!socket) return
    socket.onopen = socket.onmessage = socket.onerror = socket.onclose = null
    // A listener for the error a dying socket may still emit (ws throws on unhandled ones).
    socket.onerror = () => {}
    try {
      // `ws` (Node) can cut the TCP connection at once; a browser socket can only start closing,
      // and a stalled one may never finish: either way it is forgotten here.
      const terminate = (socket as { terminate?: () => void }).terminate
      if (terminate && code !== CloseCode.Normal) terminate.call(socket)
      else socket.close(code, reason)
    } catch {
      // Already closing; nothing to do.
    }
  }

  /** Pings after `intervalMs` of silence; gives up on the socket after `timeoutMs` of it. */
  private armWatchdog(generation: number): void {
    const { intervalMs, timeoutMs } = this.deps.heartbeat
    const tick = Math.max(10, Math.min(intervalMs, timeoutMs) / 4)
    const check = () => {
      if (generation !== this.generation) return
      const silent = Date.now() - this.lastHeard
      if (silent >= timeoutMs) {
        this.lost(undefined, new ChatError('timeout', `no frame for ${silent} ms; reconnecting`))
        return
      }
      if (this.state === 'open' && silent >= intervalMs && Date.now() - this.lastPing >= intervalMs) {
        this.lastPing = Date.now()
        this.send({ type: 'ping' })
      }
      this.watchdog = setTimeout(check, tick)
    }
    this.watchdog = setTimeout(check, tick)
  }

  private enter(
    state: ConnectionState,
    extra: Partial<Omit<StateChange, 'state' | 'previous' | 'attempt'>> = {},
  ): void {
    const previous = this.state
    this.state = state
    this.deps.state({ state, previous, attempt: this.attempt, ...extra })
  }
}

function asChatError(err: unknown): ChatError {
  if (err instanceof ChatError) return err
  return new ChatError('network', err instanceof Error ? err.message : String(err))
}
