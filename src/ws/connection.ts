import type { FastifyBaseLogger } from 'fastify'
import type { RawData, WebSocket } from 'ws'
import type { AppServices } from '../app.js'
import type { Listener } from '../broker/broker.js'
import { type ChatEvent, conversationChannel, userChannel } from '../broker/events.js'
import { CloseCode } from '../protocol/close-codes.js'
import { type ClientFrame, checkClientFrame, PROTOCOL_VERSION } from '../protocol/frames.js'
import { NotFoundError } from '../services/errors.js'
import type { MessageView } from '../services/views.js'
import type { UserRow } from '../store/schema.js'
import { errorCode } from './errors.js'
import { ConversationFeed } from './feed.js'
import { corkForThisTurn, errorFrame, eventFrame, messageNewFrame } from './outbound.js'
import { TypingIndicators } from './typing.js'

export interface ConnectionContext {
  services: AppServices
  log: FastifyBaseLogger
}

/** Frames that change stored state: refused once shutdown has begun. */
const WRITES = new Set<ClientFrame['type']>(['message.send', 'message.edit', 'message.delete', 'read'])

type Handlers = {
  [K in ClientFrame['type']]: (
    c: Connection,
    frame: Extract<ClientFrame, { type: K }>,
  ) => Promise<void> | void
}

/**
 * One client socket. It is created and subscribed *before* the upgrade completes (frames queue
 * until `attach`), so a message sent the instant the client sees the socket open reaches it.
 * `bound` is the conversation of the seed's per-conversation socket; undefined for the user socket.
 */
export class Connection {
  alive = true
  private socket: WebSocket | undefined
  private readonly queued: string[] = []
  private readonly feeds = new Map<string, ConversationFeed>()
  private readonly early = new Map<string, MessageView[]>()
  /** Membership version per followed conversation, as far as this socket knows (see `pushChecked`). */
  private readonly knownVersion = new Map<string, number>()
  /** Messages waiting for a membership re-check, by conversation. */
  private readonly unverified = new Map<string, MessageView[]>()
  private readonly unsubscribe = new Map<string, () => void>()
  private readonly peers = new Map<string, 'online' | 'offline'>()
  /** Made on the first typing frame: most sockets never send one. */
  private typing: TypingIndicators | undefined
  private expiry: NodeJS.Timeout | undefined
  private violations = 0
  /** Writes being handled; shutdown waits for them (a send is acked before its socket closes). */
  private readonly inflight = new Set<Promise<void>>()
  private draining = false
  private closed = false
  private counted = false
  private readonly listener: Listener = (event, channel) => this.onEvent(event, channel)

  /** Only the id: the row (hash, e-mail, dates) would cost every idle socket about 1 KB. */
  readonly user: { readonly id: string }

  /**
   * `awaitSync` (user socket opened with `?resume=true`): hold message delivery until the client's
   * first frame, which should be its `sync`, so replayed and live messages cannot interleave.
   */
  constructor(
    user: UserRow,
    private tokenExp: number,
    readonly bound: string | undefined,
    private readonly ctx: ConnectionContext,
    private awaitSync = false,
  ) {
    this.user = { id: user.id }
    if (bound) this.awaitSync = false
  }

  /** Subscribes and sets each conversation's starting point. Runs before the upgrade. */
  async open(sinceSeq: number | undefined): Promise<void> {
    const { conversations } = this.ctx.services
    this.queue(
      JSON.stringify({
        type: 'ready',
        user_id: this.user.id,
        protocol: PROTOCOL_VERSION,
        ...(this.bound ? { conversation_id: this.bound } : {}),
      }),
    )
    if (this.bound) {
      // The user channel too: it carries the account's own events (account.closed, removal).
      await this.subscribe(userChannel(this.user.id))
      await this.subscribe(conversationChannel(this.bound))
      const { lastSeq: last, membersVersion } = await conversations.position(this.bound)
      this.knownVersion.set(this.bound, membersVersion)
      // A cursor past the end would silently swallow the next messages: clamp it.
      const start = sinceSeq === undefined ? last : Math.min(sinceSeq, last)
      this.addFeed(this.bound, start, start < last)
      return
    }
    await this.subscribe(userChannel(this.user.id))
    const ids = await conversations.memberships(this.user.id)
    await Promise.all(ids.map((m) => this.subscribe(conversationChannel(m.conversationId))))
    // Read the starting points only now: anything committed after them arrives live.
    for (const m of await conversations.memberships(this.user.id)) {
      // A conversation joined meanwhile (member.added) already has its feed, from its join point.
      if (!this.feeds.has(m.conversationId)) {
        this.knownVersion.set(m.conversationId, m.membersVersion)
        this.addFeed(m.conversationId, m.lastSeq, false)
      }
    }
  }

  attach(socket: WebSocket): void {
    this.socket = socket
    releaseUpgrade(socket)
    socket.on('message', (data, isBinary) => this.onFrame(data, isBinary))
    socket.on('pong', () => {
      this.alive = true
    })
    socket.on('close', (code) => {
      this.ctx.services.metrics.wsClosed.labels(String(code)).inc()
      void this.dispose()
    })
    socket.on('error', (err) => this.ctx.log.debug({ err }, 'socket error'))
    for (const s of this.queued.splice(0)) socket.send(s)
    this.armExpiry()
    this.ctx.services.metrics.wsConnections.inc()
    this.counted = true
    void this.announce('online').catch((err) => this.ctx.log.warn({ err }, 'presence update failed'))
  }

  /** Closes the socket (if attached) and releases everything. */
  close(code: number, reason: string): void {
    if (this.socket && this.socket.readyState <= 1) this.socket.close(code, reason)
    else void this.dispose()
  }

  /** Re-reads every followed conversation from the store (after a broker outage). */
  catchUp(): void {
    for (const feed of this.feeds.values()) void feed.fill()
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
    clearTimeout(this.expiry)
    for (const feed of this.feeds.values()) feed.close()
    for (const off of this.unsubscribe.values()) off()
    this.unsubscribe.clear()
    this.typing?.stopAll()
    if (this.counted) {
      this.ctx.services.metrics.wsConnections.dec()
      await this.announce('offline').catch((err) => this.ctx.log.warn({ err }, 'presence update failed'))
    }
  }

  private async subscribe(channel: string): Promise<void> {
    if (this.unsubscribe.has(channel) || this.closed) return
    this.unsubscribe.set(channel, () => {})
    const off = await this.ctx.services.broker.subscribe(channel, this.listener)
    if (this.closed) off()
    else this.unsubscribe.set(channel, off)
  }

  private unsubscribeFrom(channel: string): void {
    this.unsubscribe.get(channel)?.()
    this.unsubscribe.delete(channel)
  }

  private addFeed(conversationId: string, start: number, fill: boolean): ConversationFeed {
    const { messages } = this.ctx.services
    const feed = new ConversationFeed(
      start,
      { after: (seq, limit) => messages.after(conversationId, seq, limit, this.user.id) },
      {
        deliver: (m, replay) => (replay ? this.sendPaced(messageNewFrame(m)) : this.send(messageNewFrame(m))),
        onError: (err) => this.reportFailure(err),
      },
      this.awaitSync,
    )
    this.feeds.set(conversationId, feed)
    for (const m of this.early.get(conversationId) ?? []) feed.push(m)
    this.early.delete(conversationId)
    if (fill) void feed.fill()
    return feed
  }

  // ---- events from the broker ----

  private onEvent(event: ChatEvent, channel: string): void {
    if (this.closed) return
    if (event.type === 'account.closed') {
      if (event.user_id === this.user.id) this.close(CloseCode.Forbidden, 'account closed')
      return
    }
    const feed = this.feeds.get(event.conversation_id)
    switch (event.type) {
      case 'message.created':
        if (feed) this.pushChecked(feed, event)
        else if (this.unsubscribe.has(conversationChannel(event.conversation_id)))
          this.stashEarly(event.message)
        return
      case 'message.updated':
      case 'message.deleted':
        if (feed?.amend(event.message)) this.sendEvent(event)
        return
      case 'typing':
        if (feed && event.user_id !== this.user.id) this.sendEvent(event)
        return
      case 'presence':
        if (event.user_id !== this.user.id && this.peers.get(event.user_id) !== event.status) {
          this.peers.set(event.user_id, event.status)
          this.sendEvent(event)
        }
        return
      case 'conversation.created':
        void this.join(event.conversation_id, 0, event)
        return
      case 'member.added':
        if (event.user_id === this.user.id && !this.bound)
          void this.join(event.conversation_id, event.seq, event)
        else if (feed) this.sendEvent(event)
        return
      case 'member.removed':
        if (event.user_id === this.user.id) this.leave(event.conversation_id, event)
        else if (feed && channel === conversationChannel(event.conversation_id)) {
          this.learnVersion(event.conversation_id, event.members_version)
          this.sendEvent(event)
        }
        return
      default:
        if (feed) this.sendEvent(event)
    }
  }

  /**
   * A message stored under a membership version this socket has not seen means a removal it has
   * not heard of yet (its event can be overtaken by another instance's publish). Re-check
   * membership before delivering; on the same instance versions always arrive in order, so this
   * costs a query only after a removal, or on a conversation joined after the socket opened.
   */
  private pushChecked(
    feed: ConversationFeed,
    event: { conversation_id: string; message: MessageView; members_version: number },
  ): void {
    const conversationId = event.conversation_id
    const known = this.knownVersion.get(conversationId)
    const waiting = this.unverified.get(conversationId)
    if (waiting === undefined && known !== undefined && event.members_version <= known) {
      feed.push(event.message)
      return
    }
    if (waiting) {
      waiting.push(event.message)
      return
    }
    this.unverified.set(conversationId, [event.message])
    this.ctx.services.conversations
      .requireMember(this.user.id, conversationId)
      .then(
        () => {
          this.learnVersion(conversationId, event.members_version)
          for (const m of this.unverified.get(conversationId) ?? []) feed.push(m)
        },
        (err) => {
          if (err instanceof NotFoundError) {
            this.leave(conversationId, {
              type: 'member.removed',
              conversation_id: conversationId,
              user_id: this.user.id,
              seq: feed.position,
              members_version: event.members_version,
            })
          }
          // Otherwise (database unavailable) drop them: the feed's next store read re-checks
          // membership in its query and delivers them if the user is still a member.
        },
      )
      .finally(() => this.unverified.delete(conversationId))
  }

  private learnVersion(conversationId: string, version: number): void {
    if (version > (this.knownVersion.get(conversationId) ?? -1))
      this.knownVersion.set(conversationId, version)
  }

  private stashEarly(m: MessageView): void {
    const list = this.early.get(m.conversation_id) ?? []
    list.push(m)
    this.early.set(m.conversation_id, list)
  }

  /** The user socket starts following a conversation the user just joined, from `seq`. */
  private async join(conversationId: string, seq: number, event: ChatEvent): Promise<void> {
    if (this.bound || this.feeds.has(conversationId)) return
    this.sendEvent(event)
    await this.subscribe(conversationChannel(conversationId))
    if (!this.closed && !this.feeds.has(conversationId)) this.addFeed(conversationId, seq, true)
  }

  /** Removed from a conversation: the socket stops following it at once. */
  private leave(conversationId: string, event: ChatEvent): void {
    const feed = this.feeds.get(conversationId)
    if (!feed) return
    // Closing the feed drops whatever it still held: nothing more of this conversation goes out.
    feed.close()
    this.feeds.delete(conversationId)
    this.unsubscribeFrom(conversationChannel(conversationId))
    this.sendEvent(event)
    if (this.bound === conversationId) this.close(CloseCode.Forbidden, 'removed from the conversation')
  }

  // ---- frames from the client ----

  private onFrame(data: RawData, isBinary: boolean): void {
    if (this.closed) return
    if (isBinary) {
      void this.startFeeds()
      this.violation('invalid_frame', 'binary frames are not supported; send JSON text')
      return
    }
    let parsed: unknown
    try {
      parsed = JSON.parse(data.toString())
    } catch {
      void this.startFeeds()
      this.violation('invalid_json', 'frame is not valid JSON')
      return
    }
    const frame = checkClientFrame(parsed)
    // `sync` starts held feeds itself, once its cursors are applied.
    if (!('type' in frame && frame.type === 'sync')) void this.startFeeds()
    if ('code' in frame) {
      const cmid = (parsed as { client_msg_id?: unknown } | null)?.client_msg_id
      this.violation(frame.code, frame.message, typeof cmid === 'string' ? cmid : undefined)
      return
    }
    this.ctx.services.metrics.wsFramesIn.labels(frame.type).inc()
    const cmid = frame.type === 'message.send' ? (frame.client_msg_id ?? null) : undefined
    if (this.draining && WRITES.has(frame.type)) {
      this.send(errorFrame('unavailable', 'the server is shutting down; reconnect and retry', cmid))
      return
    }
    const handler = Connection.handlers[frame.type] as (c: Connection, f: ClientFrame) => Promise<void> | void
    const run = Promise.resolve()
      .then(() => handler(this, frame))
      .catch((err) => {
        const { code, message } = errorCode(err)
        if (code === 'internal') this.ctx.log.error({ err }, 'frame handler failed')
        this.send(errorFrame(code, message, cmid))
      })
    // Only writes are waited for at shutdown: a replay to a client that stopped reading never ends.
    if (!WRITES.has(frame.type)) return
    this.inflight.add(run)
    void run.finally(() => this.inflight.delete(run))
  }

  /** Graceful shutdown: refuses new writes, and resolves once every write being handled is answered. */
  async drain(): Promise<void> {
    this.draining = true
    while (this.inflight.size > 0) await Promise.all(this.inflight)
  }

  private violation(code: string, message: string, clientMsgId?: string): void {
    this.send(errorFrame(code, message, clientMsgId))
    if (++this.violations >= this.ctx.services.config.ws.maxViolations) {
      this.close(CloseCode.PolicyViolation, 'too many invalid frames')
    }
  }

  /** The conversation a frame addresses: the bound one, or the one it names (user socket). */
  private target(named: string | undefined): string {
    const id = named ?? this.bound
    if (!id) throw Object.assign(new Error(), { code: 'validation_failed' })
    return id
  }

  /** One table for every connection (per-instance closures cost each idle socket about 2 KB). */
  private static readonly handlers: Handlers = {
    'message.send': async (c, f) => {
      const conversationId = c.resolveConversation(f.conversation_id, f.client_msg_id ?? null)
      if (conversationId === undefined) return
      const { messages } = c.ctx.services
      const { message } = await messages.send(c.user.id, conversationId, f.content, f.client_msg_id ?? null)
      c.send(JSON.stringify({ type: 'message.ack', client_msg_id: f.client_msg_id ?? null, message }))
    },
    'message.edit': async (c, f) => {
      await c.ctx.services.messages.edit(c.user.id, f.message_id, f.content)
    },
    'message.delete': async (c, f) => {
      await c.ctx.services.messages.delete(c.user.id, f.message_id)
    },
    typing: (c, f) => {
      const conversationId = c.resolveConversation(f.conversation_id)
      if (conversationId === undefined) return
      c.typing ??= new TypingIndicators(
        (id, state) => c.publishTyping(id, state),
        c.ctx.services.config.ws.typingTtlMs,
      )
      c.typing.set(conversationId, f.state)
    },
    read: async (c, f) => {
      const conversationId = c.resolveConversation(f.conversation_id)
      if (conversationId === undefined) return
      await c.ctx.services.messages.markRead(c.user.id, conversationId, f.seq)
    },
    sync: async (c, f) => {
      const unknown: string[] = []
      const resumes: Promise<void>[] = []
      for (const [conversationId, seq] of Object.entries(f.cursors)) {
        const feed = c.feeds.get(conversationId)
        if (feed) resumes.push(feed.resumeFrom(seq))
        else unknown.push(conversationId)
      }
      if (unknown.length > 0) c.send(errorFrame('not_found', `not a member of: ${unknown.join(', ')}`))
      await Promise.all([...resumes, c.startFeeds()])
    },
    ping: (c) => {
      c.send('{"type":"pong"}')
    },
    auth: async (c, f) => {
      // The same check as the upgrade: a deleted or deactivated account cannot extend its socket.
      const { user, exp } = await c.ctx.services.auth.authenticate(f.access_token)
      if (user.id !== c.user.id) {
        c.send(errorFrame('unauthorized', 'the token belongs to another user'))
        return
      }
      c.tokenExp = exp
      c.armExpiry()
    },
  }

  /** Ends the `?resume=true` hold: every feed delivers from its position. */
  private async startFeeds(): Promise<void> {
    if (!this.awaitSync) return
    this.awaitSync = false
    await Promise.all([...this.feeds.values()].map((f) => f.start()))
  }

  /** Checks that the frame's conversation is one this socket follows; answers with an error frame otherwise. */
  private resolveConversation(named: string | undefined, clientMsgId?: string | null): string | undefined {
    let id: string
    try {
      id = this.target(named)
    } catch {
      this.send(
        errorFrame('validation_failed', 'conversation_id is required on the user socket', clientMsgId),
      )
      return undefined
    }
    if ((this.bound && id !== this.bound) || !this.feeds.has(id)) {
      this.send(errorFrame('not_found', 'conversation not found', clientMsgId))
      return undefined
    }
    return id
  }

  private publishTyping(conversationId: string, state: 'start' | 'stop'): void {
    this.ctx.services.broker.publish({
      type: 'typing',
      conversation_id: conversationId,
      user_id: this.user.id,
      state,
    })
  }

  /** Tells peers in shared conversations when this user's first socket opens or last one closes. */
  private async announce(status: 'online' | 'offline'): Promise<void> {
    const { presence, conversations, broker } = this.ctx.services
    const changed =
      status === 'online' ? await presence.connect(this.user.id) : await presence.disconnect(this.user.id)
    const ids = [...this.feeds.keys()]
    const all = this.bound
      ? (await conversations.memberships(this.user.id)).map((m) => m.conversationId)
      : ids
    if (changed) {
      for (const conversationId of all)
        broker.publish({ type: 'presence', conversation_id: conversationId, user_id: this.user.id, status })
    }
    if (status === 'online' && !this.closed) await this.sendPeerPresence()
  }

  /** Who is online among the people this socket can see, so the client starts with the full picture. */
  private async sendPeerPresence(): Promise<void> {
    const { presence, conversations } = this.ctx.services
    const peers = await conversations.peers(this.user.id, this.bound)
    for (const id of await presence.onlineAmong(peers)) {
      if (this.peers.has(id)) continue
      this.peers.set(id, 'online')
      this.send(JSON.stringify({ type: 'presence', user_id: id, status: 'online' }))
    }
  }

  private armExpiry(): void {
    clearTimeout(this.expiry)
    const ms = Math.max(0, this.tokenExp * 1000 - Date.now())
    // setTimeout caps at ~24.8 days; access tokens live minutes.
    this.expiry = setTimeout(
      () => this.close(CloseCode.Unauthorized, 'access token expired'),
      Math.min(ms, 2 ** 31 - 1),
    )
  }

  private reportFailure(err: unknown): void {
    const { code, message } = errorCode(err)
    this.ctx.log.warn({ err }, 'resume failed')
    this.send(errorFrame(code, `could not deliver missed messages: ${message}; send sync to retry`))
  }

  private sendEvent(event: ChatEvent): void {
    const s = eventFrame(event)
    if (s !== undefined) this.send(s)
  }

  private queue(s: string): void {
    this.queued.push(s)
  }

  /** Never blocks: a client whose unsent backlog passes the bound is closed (1013) and resumes later. */
  send(s: string): void {
    const socket = this.socket
    if (!socket) {
      this.queue(s)
      return
    }
    if (socket.readyState !== 1) return
    corkForThisTurn(socket)
    socket.send(s)
    if (socket.bufferedAmount > this.ctx.services.config.ws.maxBacklogBytes) {
      this.close(CloseCode.TryAgainLater, 'backlog too large; reconnect and resume')
    }
  }

  /**
   * For replays, which the server paces itself: never closes for backlog (one large message may
   * pass the bound on its own), and past a quarter of the bound resolves only once written, so
   * the next page is read when the client has taken this one.
   */
  private sendPaced(s: string): Promise<void> | void {
    const socket = this.socket
    if (socket?.readyState !== 1) return this.send(s)
    if (socket.bufferedAmount < this.ctx.services.config.ws.maxBacklogBytes / 4) {
      socket.send(s)
      return
    }
    corkForThisTurn(socket)
    return new Promise((resolve) => socket.send(s, () => resolve()))
  }
}

/**
 * Lets go of the upgrade's HTTP objects, which would otherwise live as long as the socket: the
 * TCP socket still points at the upgrade's ServerResponse (and so at the request, its headers
 * and the token), and @fastify/websocket's 'error' listener holds the Fastify request and reply.
 * Measured: about half of an idle socket's heap (docs/performance.md, `connections`). Errors are
 * then handled by the listener `attach` adds.
 */
function releaseUpgrade(socket: WebSocket): void {
  socket.removeAllListeners('error')
  const raw = (
    socket as unknown as { _socket?: { _httpMessage?: { detachSocket?(s: unknown): void } | null } }
  )._socket
  const response = raw?._httpMessage
  if (raw && response) {
    response.detachSocket?.(raw)
    raw._httpMessage = null
  }
}
