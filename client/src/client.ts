import { AuthApi } from './auth.js'
import { Connection, FatalDialError } from './connection.js'
import { ConversationList } from './conversations.js'
import { Delivery } from './delivery.js'
import { Emitter } from './emitter.js'
import { ChatError } from './errors.js'
import { Outbox } from './outbox.js'
import type { ServerFrame } from './protocol.js'
import { RestClient } from './rest.js'
import type { HistoryPage, Message } from './rest-types.js'
import { MemoryCursorStore, MemoryOutboxStore, MemoryTokenStore } from './stores.js'
import { Timeline } from './timeline.js'
import type {
  ChatClientOptions,
  ChatEvents,
  ConnectionState,
  FetchLike,
  OutboxEntry,
  WebSocketConstructor,
} from './types.js'

/** A message to edit or delete: a stored message, an outbox entry (even unsent), or ids. */
export type MessageRef = Message | OutboxEntry | { conversationId: string; messageId: string }

type Timer = ReturnType<typeof setTimeout>

/**
 * The SDK's entry point: one per signed-in user (per tab). See docs/client.md for what it
 * guarantees and what the app provides.
 */
export class ChatClient {
  /** register / login / logout / restore. */
  readonly auth: AuthApi
  /** The typed REST wrapper (every endpoint, by path). */
  readonly rest: RestClient
  /** The conversation list, most recent first, with unread counts. */
  readonly conversations: ConversationList
  private readonly emitter: Emitter<ChatEvents>
  private readonly connection: Connection
  private readonly delivery: Delivery
  private readonly outbox: Outbox
  private readonly options: Required<Omit<ChatClientOptions, 'WebSocket'>> & {
    WebSocket: WebSocketConstructor | undefined
  }
  private readonly presenceOf = new Map<string, 'online' | 'offline'>()
  private readonly typists = new Map<string, Map<string, Timer>>()
  private readonly typingSent = new Map<string, number>()
  private readonly timelines = new Map<string, Set<Timeline>>()
  private readonly openWaiters: (() => void)[] = []
  private loadedFor: string | undefined
  private tokenTimer: Timer | undefined
  private catchingUp: Promise<void> | undefined

  constructor(options: ChatClientOptions) {
    this.options = {
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
    const o = this.options
    this.emitter = new Emitter<ChatEvents>((err) =>
      this.emitter.emit('error', new ChatError('listener', `an event listener threw: ${String(err)}`)),
    )
    this.rest = new RestClient({ baseUrl: o.baseUrl, fetch: o.fetch, timeoutMs: o.requestTimeoutMs })
    this.auth = new AuthApi(this.rest, o.tokenStore, { session: (e) => this.onSession(e) }, o.refreshAheadMs)
    this.rest.tokens = this.auth
    this.conversations = new ConversationList({
      rest: this.rest,
      me: () => this.auth.user?.id,
      changed: (items) => this.emitter.emit('conversations', items),
      unread: (conversationId, count) => this.emitter.emit('unread', { conversationId, count }),
      error: (err) => this.emitter.emit('error', err),
    })
    this.delivery = new Delivery({
      store: o.cursorStore,
      after: (id, afterSeq) => this.after(id, afterSeq),
      deliver: (id, m) => this.delivered(id, m),
      resynced: (e) => this.emitter.emit('resynced', e),
      discontinuity: (e) => this.emitter.emit('discontinuity', e),
      error: (err) => this.emitter.emit('error', err),
      retryDelay: (n) => this.backoffDelay(n),
    })
    this.outbox = new Outbox({
      store: o.outboxStore,
      rest: this.rest,
      sendFrame: (e) =>
        this.connection.send({
          type: 'message.send',
          conversation_id: e.conversationId,
          content: e.content ?? '',
          client_msg_id: e.id,
        }),
      whenOpen: () => this.whenOpen(),
      changed: (e) => this.outboxChanged(e),
      error: (err) => this.emitter.emit('error', err),
      retryDelay: (n) => this.backoffDelay(n),
    })
    this.connection = new Connection({
      dial: () => this.dial(),
      WebSocket: () => this.webSocketClass(),
      opened: () => this.opened(),
      frame: (f) => this.onFrame(f),
      state: (change) => {
        if (change.previous === 'open') this.outbox.connectionLost(change.closeCode)
        if (change.state === 'open') for (const resolve of this.openWaiters.splice(0)) resolve()
        this.emitter.emit('state', change)
      },
      reauthenticate: () => this.reauthenticate(),
      random: o.random,
      backoff: { baseMs: o.backoff.baseMs ?? 500, capMs: o.backoff.capMs ?? 30_000 },
      heartbeat: {
        intervalMs: o.heartbeat.intervalMs ?? 15_000,
        timeoutMs: o.heartbeat.timeoutMs ?? 40_000,
      },
    })
  }

  /** The socket's state. */
  get state(): ConnectionState {
    return this.connection.state
  }

  /** The signed-in user, once known. */
  get user() {
    return this.auth.user
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof ChatEvents>(event: K, listener: (payload: ChatEvents[K]) => void): () => void {
    return this.emitter.on(event, listener)
  }

  once<K extends keyof ChatEvents>(event: K, listener: (payload: ChatEvents[K]) => void): () => void {
    return this.emitter.once(event, listener)
  }

  /**
   * Connects with the current session (after `auth.login`/`auth.register`, or one restored from
   * the token store): loads the cursors, the outbox and the conversation list, then opens the
   * socket. Resolves when it is first open; rejects if it closes for good before that.
   */
  async connect(): Promise<void> {
    const user = this.auth.user ?? (await this.auth.restore())
    if (!user) throw new ChatError('session_expired', 'not signed in')
    await this.loadUser()
    try {
      await this.conversations.load()
      for (const c of this.conversations.items) this.delivery.baseline(c.id, c.last_seq)
    } catch (err) {
      // Offline at start: the socket retries and the list can be loaded later.
      this.emitter.emit('error', err instanceof ChatError ? err : new ChatError('network', String(err)))
    }
    if (this.connection.state === 'open') return
    const opened = new Promise<void>((resolve, reject) => {
      const offOpen = this.on('state', (s) => {
        if (s.state === 'open') {
          offOpen()
          resolve()
        } else if (s.state === 'closed') {
          offOpen()
          reject(new ChatError(s.reason ?? 'closed', `connection closed: ${s.reason ?? 'unknown'}`))
        }
      })
    })
    this.connection.start()
    this.scheduleTokenRefresh()
    return opened
  }

  /** Closes the socket and stays offline (the outbox keeps its entries). */
  disconnect(): void {
    clearTimeout(this.tokenTimer)
    this.connection.stop('disconnected')
  }

  /** Signs out: closes the socket, revokes the session and forgets this user's in-memory state. */
  async logout(): Promise<void> {
    this.reset('signed_out')
    await this.auth.logout()
  }

  /** Composes a message: returned at once as `pending`, then settled `sent` (with its seq) or `failed`. */
  send(conversationId: string, content: string): OutboxEntry {
    this.typing(conversationId, false)
    return this.outbox.add('send', conversationId, { content })
  }

  /** Edits a message (also one still in the outbox: the edit follows its send). */
  edit(target: MessageRef, content: string): OutboxEntry {
    const { conversationId, ...ref } = this.resolve(target)
    return this.outbox.add('edit', conversationId, { ...ref, content })
  }

  /** Deletes a message (also one still in the outbox: the delete follows its send). */
  delete(target: MessageRef): OutboxEntry {
    const { conversationId, ...ref } = this.resolve(target)
    return this.outbox.add('delete', conversationId, ref)
  }

  /** Moves the read marker (default: up to the last delivered message). Local counts drop at once. */
  markRead(conversationId: string, seq?: number): OutboxEntry | undefined {
    const upTo =
      seq ?? this.delivery.cursor(conversationId) ?? this.conversations.get(conversationId)?.last_seq
    const me = this.auth.user?.id
    if (upTo === undefined || upTo < 1 || !me) return undefined
    const mine = this.conversations.get(conversationId)?.members.find((m) => m.user_id === me)
    if (mine && mine.last_read_seq >= upTo) return undefined
    this.conversations.markerMoved(conversationId, me, upTo)
    return this.outbox.add('read', conversationId, { seq: upTo })
  }

  /** Entries not yet sent (pending) or refused (failed), in the order they were made. */
  pending(conversationId?: string): OutboxEntry[] {
    return this.outbox.list(conversationId).map((e) => ({ ...e }))
  }

  /** Resolves once the entry is `sent` or `failed`. */
  settled(id: string): Promise<OutboxEntry> {
    return this.outbox.settled(id)
  }

  /** Queues a failed entry again (same client_msg_id). */
  retry(id: string): void {
    this.outbox.retry(id)
  }

  /** Drops a failed entry. */
  discard(id: string): void {
    this.outbox.discard(id)
  }

  /**
   * The user is typing (or stopped). Throttled: at most one `start` per conversation per
   * `typingThrottleMs`; a `stop` only after a start. Dropped while offline (typing is ephemeral).
   */
  typing(conversationId: string, typing = true): void {
    const last = this.typingSent.get(conversationId)
    if (typing) {
      if (last !== undefined && Date.now() - last < this.options.typingThrottleMs) return
      if (this.connection.send({ type: 'typing', conversation_id: conversationId, state: 'start' }))
        this.typingSent.set(conversationId, Date.now())
      return
    }
    if (last === undefined) return
    this.typingSent.delete(conversationId)
    this.connection.send({ type: 'typing', conversation_id: conversationId, state: 'stop' })
  }

  /** Who is typing in a conversation now. */
  typingIn(conversationId: string): string[] {
    return [...(this.typists.get(conversationId)?.keys() ?? [])]
  }

  /** A peer's presence as last announced (offline when unknown). */
  presence(userId: string): 'online' | 'offline' {
    return this.presenceOf.get(userId) ?? 'offline'
  }

  unreadCount(conversationId: string): number {
    return this.conversations.unreadCount(conversationId)
  }

  /** The last seq delivered to the app in this conversation (its cursor). */
  lastDelivered(conversationId: string): number | undefined {
    return this.delivery.cursor(conversationId)
  }

  /** A live, de-duplicated view of a conversation for a screen; call `loadOlder()` to page back. */
  timeline(conversationId: string): Timeline {
    return new Timeline(conversationId, {
      before: async (id, beforeSeq, limit) =>
        (await this.history(id, { ...(beforeSeq !== undefined ? { beforeSeq } : {}), limit })).items,
      unsent: (id) => this.pending(id),
      subscribe: (id, t) => {
        let set = this.timelines.get(id)
        if (!set) {
          set = new Set()
          this.timelines.set(id, set)
        }
        set.add(t)
        return () => set.delete(t)
      },
    })
  }

  /** One page of history by keyset: before `beforeSeq` (newest page without it) or after `afterSeq`. */
  history(
    conversationId: string,
    page: { beforeSeq?: number; afterSeq?: number; limit?: number } = {},
  ): Promise<HistoryPage> {
    return this.rest.get('/api/v1/chat/conversations/{id}/messages', {
      params: { id: conversationId },
      query: {
        limit: page.limit ?? 50,
        ...(page.beforeSeq !== undefined ? { before_seq: page.beforeSeq } : {}),
        ...(page.afterSeq !== undefined ? { after_seq: page.afterSeq } : {}),
      },
    })
  }

  /** Resolves once cursors and outbox entries written so far reached their stores. */
  async flushed(): Promise<void> {
    await Promise.all([this.delivery.flushed(), this.outbox.flushed()])
  }

  // --- internals -------------------------------------------------------------------------

  private async dial(): Promise<{ url: string; protocols?: string[] }> {
    const base = this.options.baseUrl.replace(/\/+$/, '').replace(/^http/, 'ws')
    const url = `${base}/api/v1/chat/ws?resume=true`
    try {
      if (this.options.socketAuth === 'protocol') {
        const token = await this.auth.accessToken()
        if (!token) throw new FatalDialError('session_expired', 'not signed in')
        return { url, protocols: ['bearer', token] }
      }
      const { ticket } = await this.rest.post('/api/v1/chat/ws-ticket')
      return { url: `${url}&ticket=${encodeURIComponent(ticket)}` }
    } catch (err) {
      if (err instanceof ChatError && err.code === 'session_expired')
        throw new FatalDialError(err.code, err.message)
      throw err
    }
  }

  private async webSocketClass(): Promise<WebSocketConstructor> {
    if (this.options.WebSocket) return this.options.WebSocket
    const global = (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket
    if (global) return global
    // Node 20 has no WebSocket client: use the `ws` package (an optional peer dependency). The
    // name is a variable so that browser bundlers do not try to include it.
    const name = 'ws'
    const mod = (await import(/* @vite-ignore */ name)) as {
      WebSocket?: WebSocketConstructor
      default?: WebSocketConstructor
    }
    const Ctor = mod.WebSocket ?? mod.default
    if (!Ctor)
      throw new FatalDialError('unsupported', 'no WebSocket here: install `ws` or pass options.WebSocket')
    this.options.WebSocket = Ctor
    return Ctor
  }

  /** The socket is ready: resume every conversation from its cursor. */
  private opened(): void {
    // Presence is re-announced by the server for peers online now; anyone else is offline.
    for (const [userId, status] of this.presenceOf) {
      if (status === 'online') this.emitter.emit('presence', { userId, status: 'offline' })
    }
    this.presenceOf.clear()
    this.connection.send({ type: 'sync', cursors: this.delivery.syncCursors() })
    this.scheduleTokenRefresh()
  }

  private onFrame(f: ServerFrame): void {
    switch (f.type) {
      case 'message.new':
        this.delivery.receive(f.conversation_id, f.message)
        return
      case 'message.ack':
        if (f.client_msg_id) this.outbox.acked(f.client_msg_id, f.message)
        this.showInTimelines(f.message.conversation_id, f.message)
        return
      case 'message.updated':
      case 'message.deleted': {
        const event = { conversationId: f.conversation_id, message: f.message }
        this.showInTimelines(f.conversation_id, f.message)
        this.conversations.amended(f.conversation_id, f.message)
        this.emitter.emit(f.type, event)
        return
      }
      case 'read':
        this.conversations.markerMoved(f.conversation_id, f.user_id, f.seq)
        this.emitter.emit('read', { conversationId: f.conversation_id, userId: f.user_id, seq: f.seq })
        return
      case 'typing':
        this.typed(f.conversation_id, f.user_id, f.state === 'start')
        return
      case 'presence':
        this.presenceOf.set(f.user_id, f.status)
        this.emitter.emit('presence', { userId: f.user_id, status: f.status })
        return
      case 'error':
        this.onErrorFrame(f)
        return
      default:
        this.onMembershipFrame(f)
    }
  }

  private onMembershipFrame(f: ServerFrame): void {
    const me = this.auth.user?.id
    switch (f.type) {
      case 'conversation.created':
        // A new conversation starts at seq 0: its first message is 1.
        this.delivery.baseline(f.conversation_id, 0)
        void this.conversations.refresh(f.conversation_id)
        this.emitter.emit('conversation', { type: 'created', conversationId: f.conversation_id })
        return
      case 'conversation.updated':
        this.conversations.renamed(f.conversation_id, f.title)
        this.emitter.emit('conversation', {
          type: 'updated',
          conversationId: f.conversation_id,
          title: f.title,
        })
        return
      case 'member.added':
      case 'member.updated':
        void this.conversations.refresh(f.conversation_id)
        this.emitter.emit('conversation', {
          type: f.type,
          conversationId: f.conversation_id,
          userId: f.user_id,
          role: f.role,
        })
        return
      case 'member.removed':
        if (f.user_id === me) {
          // Everything up to the removal was delivered before this frame; nothing follows it.
          this.delivery.forget(f.conversation_id, true)
          this.conversations.remove(f.conversation_id)
        } else void this.conversations.refresh(f.conversation_id)
        this.emitter.emit('conversation', {
          type: 'member.removed',
          conversationId: f.conversation_id,
          userId: f.user_id,
        })
        return
      default:
    }
  }

  private onErrorFrame(f: Extract<ServerFrame, { type: 'error' }>): void {
    if (f.client_msg_id) {
      this.outbox.refused(f.client_msg_id, f.code, f.message)
      return
    }
    const error = new ChatError(f.code, f.message)
    this.emitter.emit('error', error)
    if (f.code === 'not_found' && f.message.startsWith('not a member of:')) {
      // `sync` named conversations the server does not know for us: stop resuming them.
      for (const id of f.message.slice('not a member of:'.length).split(',')) {
        const trimmed = id.trim()
        if (trimmed) this.delivery.forget(trimmed, true)
      }
      return
    }
    if (f.code === 'unavailable' || f.code === 'internal') void this.catchUp()
  }

  /** The server could not replay what we missed: read it from history, then resume from there. */
  private catchUp(): Promise<void> {
    this.catchingUp ??= this.delivery
      .catchUp('resume_failed')
      .then(() => {
        this.connection.send({ type: 'sync', cursors: this.delivery.syncCursors() })
      })
      .finally(() => {
        this.catchingUp = undefined
      })
    return this.catchingUp
  }

  private delivered(conversationId: string, message: Message): void {
    if (message.sender_id) this.typed(conversationId, message.sender_id, false)
    this.conversations.delivered(conversationId, message)
    this.showInTimelines(conversationId, message)
    this.emitter.emit('message', { conversationId, message })
  }

  private showInTimelines(conversationId: string, message: Message): void {
    for (const t of this.timelines.get(conversationId) ?? []) t.put(message)
  }

  private outboxChanged(entry: OutboxEntry): void {
    if (entry.status === 'sent' && entry.message) this.showInTimelines(entry.conversationId, entry.message)
    if (entry.kind === 'read' && entry.status === 'sent' && entry.seq !== undefined && this.auth.user)
      this.conversations.markerMoved(entry.conversationId, this.auth.user.id, entry.seq)
    for (const t of this.timelines.get(entry.conversationId) ?? []) t.outboxChanged()
    this.emitter.emit('outbox', entry)
  }

  /** A peer's typing state; a start expires on its own if its stop never comes. */
  private typed(conversationId: string, userId: string, typing: boolean): void {
    let typists = this.typists.get(conversationId)
    const timer = typists?.get(userId)
    if (!typing && timer === undefined) return
    clearTimeout(timer)
    if (typing) {
      typists ??= new Map()
      this.typists.set(conversationId, typists)
      typists.set(
        userId,
        setTimeout(() => this.typed(conversationId, userId, false), this.options.typingThrottleMs * 3),
      )
      if (timer !== undefined) return
    } else typists?.delete(userId)
    this.emitter.emit('typing', { conversationId, userId, typing })
  }

  private resolve(target: MessageRef): {
    conversationId: string
    messageId?: string
    targetId?: string
  } {
    if ('kind' in target) {
      if (target.message) return { conversationId: target.conversationId, messageId: target.message.id }
      if (target.messageId) return { conversationId: target.conversationId, messageId: target.messageId }
      return { conversationId: target.conversationId, targetId: target.id }
    }
    if ('seq' in target) return { conversationId: target.conversation_id, messageId: target.id }
    return { conversationId: target.conversationId, messageId: target.messageId }
  }

  private async after(conversationId: string, afterSeq: number) {
    const page = await this.history(conversationId, { afterSeq, limit: 100 })
    return { items: page.items, more: page.next_after_seq !== null }
  }

  private whenOpen(): Promise<void> {
    if (this.connection.state === 'open') return Promise.resolve()
    return new Promise((resolve) => this.openWaiters.push(resolve))
  }

  private async reauthenticate(): Promise<boolean> {
    try {
      await this.auth.refreshNow()
      return true
    } catch (err) {
      if (err instanceof ChatError && err.code === 'session_expired') return false
      throw err
    }
  }

  /** Refreshes the session ahead of the access token's expiry and hands the socket the new token. */
  private scheduleTokenRefresh(): void {
    clearTimeout(this.tokenTimer)
    void this.auth.expiresAt().then((at) => {
      if (at === undefined || this.connection.state === 'closed') return
      const wait = Math.max(0, at - Date.now() - this.options.refreshAheadMs)
      clearTimeout(this.tokenTimer)
      this.tokenTimer = setTimeout(
        () => {
          this.auth.refreshNow().then(
            (token) => {
              this.connection.send({ type: 'auth', access_token: token })
              this.scheduleTokenRefresh()
            },
            (err: unknown) => {
              if (err instanceof ChatError && err.code === 'session_expired') return
              this.emitter.emit(
                'error',
                err instanceof ChatError ? err : new ChatError('network', String(err)),
              )
              this.tokenTimer = setTimeout(() => this.scheduleTokenRefresh(), this.backoffDelay(1))
            },
          )
        },
        Math.min(wait, 2 ** 31 - 1),
      )
    })
  }

  private async onSession(e: ChatEvents['session']): Promise<void> {
    if (e.status === 'expired') this.reset('session_expired')
    if (e.status === 'signed_in') await this.loadUser()
    this.emitter.emit('session', e)
  }

  /** Binds the cursors and the outbox to the signed-in user (sends made from now on are theirs). */
  private async loadUser(): Promise<void> {
    const user = this.auth.user
    if (!user || this.loadedFor === user.id) return
    this.loadedFor = user.id
    await Promise.all([this.delivery.load(user.id), this.outbox.load(user.id)])
  }

  private reset(reason: 'signed_out' | 'session_expired'): void {
    clearTimeout(this.tokenTimer)
    this.connection.stop(reason)
    this.delivery.stop()
    this.outbox.stop()
    this.conversations.clear()
    this.loadedFor = undefined
  }

  private backoffDelay(attempt: number): number {
    const base = this.options.backoff.baseMs ?? 500
    const cap = this.options.backoff.capMs ?? 30_000
    return Math.floor(this.options.random() * Math.min(cap, base * 2 ** attempt))
  }
}

function defaultFetch(): FetchLike {
  const f = (globalThis as { fetch?: FetchLike }).fetch
  if (!f) return () => Promise.reject(new ChatError('unsupported', 'no fetch here: pass options.fetch'))
  return (url, init) => f.call(globalThis, url, init)
}
