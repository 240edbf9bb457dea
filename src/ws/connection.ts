import type { Socket } from 'node:net'
import type { FastifyBaseLogger } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import { countFrameIn } from '../observability/metrics.js'
import { CloseCode } from '../protocol/close-codes.js'
import { checkClientFrame, PROTOCOL_VERSION } from '../protocol/frames.js'
import type { Services } from '../services/index.js'
import { dispatch, WRITES } from './dispatch.js'
import { errorCode } from './errors.js'
import type { ExpiryWheel } from './expiry.js'
import { Follower } from './follower.js'
import { corkForThisTurn, encode, errorFrame } from './outbound.js'
import type { TypingIndicators } from './typing.js'

const CONNECTION = Symbol('connection')
/** A client's unanswered writes past which its socket is no longer read (HTTP/2's max streams, in spirit). */
const MAX_WRITES_IN_FLIGHT = 256
type Owned = (WebSocket | Socket) & { [CONNECTION]?: Connection }

/** The gateway's open connections, and the wheel that closes them when their token expires. */
export interface Registry {
  readonly open: Set<Connection>
  readonly expiry: ExpiryWheel<Connection>
}

// The listeners every socket shares: `this` is the socket, which points at its connection.
function onMessage(this: Owned, data: RawData, isBinary: boolean): void {
  this[CONNECTION]?.onFrame(data, isBinary)
}
function onPong(this: Owned): void {
  const c = this[CONNECTION]
  if (c) c.alive = true
}
function onClose(this: Owned, code: number): void {
  this[CONNECTION]?.socketClosed(code)
}
function onError(this: Owned, err: Error): void {
  this[CONNECTION]?.socketError(err)
}
function onTcpClose(this: Owned): void {
  this[CONNECTION]?.ended()
}

/**
 * One client socket: its I/O (backlog bound, pacing), lifecycle (token expiry, heartbeat,
 * shutdown drain, close) and inbound frame checks. What it follows is its `Follower`; what
 * frames do is `dispatch.ts`. It is created and subscribed *before* the upgrade completes (frames
 * queue until `attach`), so a message sent the instant the client sees the socket open reaches it.
 */
export class Connection {
  alive = true
  readonly follower: Follower
  /** Made on the first typing frame: most sockets never send one. */
  typing: TypingIndicators | undefined
  private socket: WebSocket | undefined
  private registry: Registry | undefined
  /** Frames sent before `attach`; dropped once attached. */
  private queued: string[] | undefined = []
  private violations = 0
  /** Writes being handled; shutdown waits for them (a send is acked before its socket closes). Made on the first write. */
  private inflight: Set<Promise<void>> | undefined
  private draining = false
  /** Why reads are held, if they are: storage is behind, or too many writes are unanswered. */
  private heldForStorage = false
  private heldForWrites = false
  private closed = false
  private counted = false

  /**
   * `bound`: the conversation of a per-conversation socket. `awaitSync` (user socket opened with
   * `?resume=true`): hold message delivery until the client's first frame, which should be its
   * `sync`, so replayed and live messages cannot interleave.
   */
  constructor(
    /** Only the id: the row (hash, e-mail, dates) would cost every idle socket about 1 KB. */
    readonly userId: string,
    private tokenExp: number,
    readonly bound: string | undefined,
    readonly services: Services,
    private readonly log: FastifyBaseLogger,
    awaitSync: boolean,
    /** The id of the connection lease this socket holds (see `ended`); undefined once given back. */
    private lease: string | undefined,
  ) {
    this.follower = new Follower(userId, bound, services, this, awaitSync && !bound)
  }

  /** Subscribes and sets each conversation's starting point. Runs before the upgrade. */
  async open(sinceSeq: number | undefined): Promise<void> {
    this.queued?.push(
      encode({
        type: 'ready',
        user_id: this.userId,
        protocol: PROTOCOL_VERSION,
        ...(this.bound ? { conversation_id: this.bound } : {}),
      }),
    )
    await this.follower.open(sinceSeq)
  }

  /**
   * Takes over the upgraded socket; `registry` (the gateway's) holds this connection until the
   * socket closes, and closes it when its token expires. The socket's listeners are shared by
   * every socket (they find their connection through the socket), not closures made per socket.
   */
  attach(socket: WebSocket, registry: Registry): void {
    this.socket = socket
    this.registry = registry
    registry.open.add(this)
    ;(socket as Owned)[CONNECTION] = this
    socket.on('message', onMessage)
    socket.on('pong', onPong)
    socket.on('close', onClose)
    socket.on('error', onError)
    for (const s of this.queued ?? []) socket.send(s)
    this.queued = undefined
    registry.expiry.add(this, this.tokenExp)
    this.services.metrics.wsConnections.inc()
    this.counted = true
    void this.announce('online')
  }

  /**
   * The TCP connection outlives the upgrade: its close gives the lease back and releases
   * everything however it ends, also when the client goes away before the upgrade completes.
   * A shared listener, not a closure: one made in the gateway's hook kept the whole upgrade
   * request alive, and a closure per socket costs its heap (docs/performance.md, per-socket memory).
   */
  endWith(tcp: Socket): void {
    if (tcp.destroyed) {
      this.ended()
      return
    }
    ;(tcp as Owned)[CONNECTION] = this
    tcp.on('close', onTcpClose)
  }

  /** The TCP connection closed, or the socket could not be opened: gives the lease back and releases everything. */
  ended(): void {
    const lease = this.lease
    this.lease = undefined
    if (lease !== undefined) {
      this.services.connectionLeases
        .release(this.userId, lease)
        .catch((err: unknown) => this.log.warn({ err }, 'connection lease not released; it will expire'))
    }
    void this.dispose()
  }

  /** The socket closed (its shared 'close' listener). */
  socketClosed(code: number): void {
    this.registry?.open.delete(this)
    this.services.metrics.wsClosed.labels(String(code)).inc()
    void this.dispose()
  }

  socketError(err: Error): void {
    this.log.debug({ err }, 'socket error')
  }

  /** Closes the socket (if attached) and releases everything. */
  close(code: number, reason: string): void {
    if (this.socket && this.socket.readyState <= 1) this.socket.close(code, reason)
    else void this.dispose()
  }

  terminate(): void {
    this.socket?.terminate()
  }

  ping(): void {
    this.alive = false
    this.socket?.ping()
  }

  /** Releases subscriptions, timers and presence. Safe to call twice. */
  async dispose(): Promise<void> {
    if (this.closed) return
    this.closed = true
    this.registry?.expiry.remove(this, this.tokenExp)
    this.follower.dispose()
    this.typing?.stopAll()
    if (this.counted) {
      this.services.metrics.wsConnections.dec()
      await this.announce('offline')
    }
  }

  /** A fresh access token arrived (`auth` frame): the socket lives until it expires. */
  extendUntil(exp: number): void {
    if (this.closed) return
    this.registry?.expiry.remove(this, this.tokenExp)
    this.tokenExp = exp
    this.registry?.expiry.add(this, exp)
  }

  /** The token expired (the gateway's expiry wheel). */
  expired(): void {
    this.close(CloseCode.Unauthorized, 'access token expired')
  }

  /** Graceful shutdown: refuses new writes, and resolves once every write being handled is answered. */
  async drain(): Promise<void> {
    this.draining = true
    while (this.inflight && this.inflight.size > 0) await Promise.all(this.inflight)
  }

  onFrame(data: RawData, isBinary: boolean): void {
    if (this.closed) return
    const receivedAt = performance.now()
    if (isBinary) {
      void this.follower.start()
      this.violation('invalid_frame', 'binary frames are not supported; send JSON text')
      return
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(data.toString())
    } catch {
      void this.follower.start()
      this.violation('invalid_json', 'frame is not valid JSON')
      return
    }
    const frame = checkClientFrame(parsed)
    // `sync` starts held feeds itself, once its cursors are applied.
    if (!('type' in frame && frame.type === 'sync')) void this.follower.start()
    if ('code' in frame) {
      const cmid = (parsed as { client_msg_id?: unknown } | null)?.client_msg_id
      this.violation(frame.code, frame.message, typeof cmid === 'string' ? cmid : undefined)
      return
    }
    countFrameIn(this.services.metrics, frame.type)
    const cmid = frame.type === 'message.send' ? (frame.client_msg_id ?? null) : undefined
    if (this.draining && WRITES.has(frame.type)) {
      this.send(errorFrame('unavailable', 'the server is shutting down; reconnect and retry', cmid))
      return
    }
    const run = Promise.resolve()
      .then(() => dispatch(this, frame, receivedAt))
      .catch((err) => {
        const { code, message } = errorCode(err)
        if (code === 'internal') this.log.error({ err }, 'frame handler failed')
        this.send(errorFrame(code, message, cmid))
      })
    if (frame.type === 'message.send' && this.services.messages.intake.pressed) this.holdForStorage()
    // Only writes are waited for at shutdown: a replay to a client that stopped reading never ends.
    if (!WRITES.has(frame.type)) return
    this.inflight ??= new Set()
    const inflight = this.inflight
    inflight.add(run)
    if (inflight.size >= MAX_WRITES_IN_FLIGHT && !this.heldForWrites) {
      this.heldForWrites = true
      this.holdOrRead()
    }
    void run.finally(() => {
      inflight.delete(run)
      if (this.heldForWrites && inflight.size <= MAX_WRITES_IN_FLIGHT / 2) {
        this.heldForWrites = false
        this.holdOrRead()
      }
    })
  }

  /**
   * Reads from this socket stop while storage is behind, or while the client has
   * MAX_WRITES_IN_FLIGHT writes unanswered, and go on once both have caught up. Refusing instead
   * costs a parse and an error frame per send: past saturation that work, at the clients' rate,
   * starved the accepted sends (docs/performance.md, "Overload"). What was already read is
   * handled (a TCP read holds up to ~500 small frames: the queue's other half is room for
   * them); the rest waits in TCP buffers and the client is slowed down. Pongs wait too, for far
   * less than a heartbeat.
   */
  private holdOrRead(): void {
    const socket = this.socket
    if (!socket || this.closed) return
    const held = this.heldForStorage || this.heldForWrites
    if (held && !socket.isPaused) socket.pause()
    else if (!held && socket.isPaused) socket.resume()
  }

  private holdForStorage(): void {
    if (this.heldForStorage) return
    this.heldForStorage = true
    this.holdOrRead()
    this.services.messages.intake.whenRelieved(() => {
      this.heldForStorage = false
      this.holdOrRead()
    })
  }

  private violation(
    code: 'invalid_frame' | 'invalid_json' | 'unknown_type',
    message: string,
    cmid?: string,
  ): void {
    this.send(errorFrame(code, message, cmid))
    if (++this.violations >= this.services.config.ws.maxViolations) {
      this.close(CloseCode.PolicyViolation, 'too many invalid frames')
    }
  }

  /** Tells peers when this user's first socket opens or last one closes; on open, sends who is online. */
  private async announce(status: 'online' | 'offline'): Promise<void> {
    const { presence } = this.services
    try {
      await presence.changed(this.userId, status, this.follower.followed())
      if (status === 'offline' || this.closed) return
      for (const id of await presence.onlinePeers(this.userId, this.bound)) {
        if (!this.follower.hides(id) && this.follower.notePeer(id, 'online'))
          this.send(encode({ type: 'presence', user_id: id, status: 'online' }))
      }
    } catch (err) {
      this.log.warn({ err }, 'presence update failed')
    }
  }

  reportFailure(err: unknown): void {
    const { code, message } = errorCode(err)
    this.log.warn({ err }, 'resume failed')
    this.send(errorFrame(code, `could not deliver missed messages: ${message}; send sync to retry`))
  }

  /** Never blocks: a client whose unsent backlog passes the bound is closed (1013) and resumes later. */
  send(s: string): void {
    const socket = this.socket
    if (!socket) {
      this.queued?.push(s)
      return
    }
    if (socket.readyState !== 1) return
    corkForThisTurn(socket)
    socket.send(s)
    if (socket.bufferedAmount > this.services.config.ws.maxBacklogBytes) {
      this.close(CloseCode.TryAgainLater, 'backlog too large; reconnect and resume')
    }
  }

  /**
   * For replays, which the server paces itself: never closes for backlog (one large message may
   * pass the bound on its own), and past a quarter of the bound resolves only once written, so
   * the next page is read when the client has taken this one.
   */
  sendPaced(s: string): Promise<void> | void {
    const socket = this.socket
    if (socket?.readyState !== 1) return this.send(s)
    if (socket.bufferedAmount < this.services.config.ws.maxBacklogBytes / 4) {
      socket.send(s)
      return
    }
    corkForThisTurn(socket)
    return new Promise((resolve) => socket.send(s, () => resolve()))
  }
}
