import { AuthApi } from './auth.js'
import { ChangePositions } from './changes.js'
import { Connection } from './connection.js'
import { ConversationList } from './conversations.js'
import { Delivery } from './delivery.js'
import { dialUserSocket, webSocketClass } from './dialer.js'
import { Emitter } from './emitter.js'
import { ChatError } from './errors.js'
import { type FrameContext, routeFrame } from './frames-in.js'
import { type MessageRef, targetOf } from './message-ref.js'
import { type ResolvedOptions, resolveOptions } from './options.js'
import { Outbox } from './outbox.js'
import { PeerActivity } from './peers.js'
import { RestClient } from './rest.js'
import type { HistoryPage, Message } from './rest-types.js'
import { OpenTimelines, type Timeline } from './timeline.js'
import type * as T from './types.js'

export type { MessageRef }

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
  private readonly emitter: Emitter<T.ChatEvents>
  private readonly connection: Connection
  private readonly delivery: Delivery
  private readonly changes: ChangePositions
  private readonly outbox: Outbox
  private readonly options: ResolvedOptions
  private readonly peers: PeerActivity
  private readonly frameContext: FrameContext
  private readonly timelines = new OpenTimelines()
  private readonly openWaiters: (() => void)[] = []
  private loadedFor: string | undefined
  private catchingUp: Promise<void> | undefined

  constructor(options: T.ChatClientOptions) {
    this.options = resolveOptions(options)
    const o = this.options
    this.emitter = new Emitter<T.ChatEvents>((err) =>
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
    this.changes = new ChangePositions({
      store: o.cursorStore,
      error: (err) => this.emitter.emit('error', err),
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
      whenOpen: (next) => this.whenOpen(next),
      changed: (e) => this.outboxChanged(e),
      error: (err) => this.emitter.emit('error', err),
      retryDelay: (n) => this.backoffDelay(n),
    })
    this.peers = new PeerActivity({
      send: (frame) => this.connection.send(frame),
      presence: (e) => this.emitter.emit('presence', e),
      typing: (e) => this.emitter.emit('typing', e),
      throttleMs: o.typingThrottleMs,
    })
    this.frameContext = {
      delivery: this.delivery,
      changes: this.changes,
      outbox: this.outbox,
      conversations: this.conversations,
      peers: this.peers,
      me: () => this.auth.user?.id,
      emit: (event, payload) => this.emitter.emit(event, payload),
      timelines: this.timelines,
      catchUp: () => this.catchUp(),
    }
    this.connection = new Connection({
      dial: () => dialUserSocket(o.baseUrl, o.socketAuth, this.auth, this.rest),
      WebSocket: async () => {
        this.options.WebSocket ??= await webSocketClass(this.options.WebSocket)
        return this.options.WebSocket
      },
      opened: () => this.opened(),
      frame: (f) => routeFrame(f, this.frameContext),
      state: (change) => {
        if (change.previous === 'open') this.outbox.connectionLost(change.closeCode)
        if (change.state === 'open') for (const resolve of this.openWaiters.splice(0)) resolve()
        this.emitter.emit('state', change)
      },
      reauthenticate: () => this.reauthenticate(),
      random: o.random,
      backoff: { baseMs: o.backoff.baseMs ?? 500, capMs: o.backoff.capMs ?? 30_000 },
      heartbeat: { intervalMs: o.heartbeat.intervalMs ?? 15_000, timeoutMs: o.heartbeat.timeoutMs ?? 40_000 },
    })
    // Browsers: when the network comes back, reconnect now instead of after the backoff.
    const events = globalThis as { addEventListener?: (type: string, listener: () => void) => void }
    events.addEventListener?.('online', () => this.connection.nudge())
  }

  /** The socket's state. */
  get state(): T.ConnectionState {
    return this.connection.state
  }

  /** The signed-in user, once known. */
  get user() {
    return this.auth.user
  }

  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof T.ChatEvents>(event: K, listener: (payload: T.ChatEvents[K]) => void): () => void {
    return this.emitter.on(event, listener)
  }

  once<K extends keyof T.ChatEvents>(event: K, listener: (payload: T.ChatEvents[K]) => void): () => void {
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
      // Change positions start from the list too, when `sync` finds none (ChangePositions.forSync).
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
    this.auth.stopKeepingFresh()
    this.connection.stop('disconnected')
  }

  /** Signs out: closes the socket, revokes the session and forgets this user's in-memory state. */
  async logout(): Promise<void> {
    await this.auth.logout()
  }

  /** Composes a message: returned at once as `pending`, then settled `sent` (with its seq) or `failed`. */
  send(conversationId: string, content: string): T.OutboxEntry {
    this.typing(conversationId, false)
    return this.outbox.add('send', conversationId, { content })
  }

  /** Edits a message (also one still in the outbox: the edit follows its send). */
  edit(target: MessageRef, content: string): T.OutboxEntry {
    const { conversationId, ...ref } = targetOf(target)
    return this.outbox.add('edit', conversationId, { ...ref, content })
  }

  /** Deletes a message (also one still in the outbox: the delete follows its send). */
  delete(target: MessageRef): T.OutboxEntry {
    const { conversationId, ...ref } = targetOf(target)
    return this.outbox.add('delete', conversationId, ref)
  }

  /** Moves the read marker (default: up to the last delivered message). Local counts drop at once. */
  markRead(conversationId: string, seq?: number): T.OutboxEntry | undefined {
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
  pending(conversationId?: string): T.OutboxEntry[] {
    return this.outbox.list(conversationId).map((e) => ({ ...e }))
  }

  /** Resolves once the entry is `sent` or `failed`. */
  settled(id: string): Promise<T.OutboxEntry> {
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
    this.peers.type(conversationId, typing)
  }

  /** Who is typing in a conversation now. */
  typingIn(conversationId: string): string[] {
    return this.peers.typingIn(conversationId)
  }

  /** A peer's presence as last announced (offline when unknown). */
  presence(userId: string): 'online' | 'offline' {
    return this.peers.presence(userId)
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
    return this.timelines.open(conversationId, {
      before: async (id, beforeSeq, limit) =>
        (await this.history(id, { ...(beforeSeq !== undefined ? { beforeSeq } : {}), limit })).items,
      unsent: (id) => this.pending(id),
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
    await Promise.all([this.delivery.flushed(), this.outbox.flushed(), this.changes.flushed()])
  }

  // --- internals -------------------------------------------------------------------------
  /** The socket is ready: resume every conversation from its cursor. */
  private opened(): void {
    this.peers.reconnected()
    this.sync()
    this.scheduleTokenRefresh()
  }

  /** Resumes every conversation from its cursor, and re-reads changes after its change position. */
  private sync(): void {
    const cursors = this.delivery.syncCursors()
    const changes = this.changes.forSync(cursors, (id) => this.conversations.get(id)?.change_seq)
    this.connection.send({ type: 'sync', cursors, changes })
  }

  /** The server could not replay what we missed: read it from history, then resume from there. */
  private catchUp(): Promise<void> {
    this.catchingUp ??= this.delivery
      .catchUp('resume_failed')
      .then(() => this.sync())
      .finally(() => {
        this.catchingUp = undefined
      })
    return this.catchingUp
  }

  private delivered(conversationId: string, message: Message): void {
    if (message.sender_id) this.peers.typed(conversationId, message.sender_id, false)
    this.conversations.delivered(conversationId, message)
    this.timelines.each(conversationId, (t) => t.put(message))
    this.emitter.emit('message', { conversationId, message })
  }

  private outboxChanged(entry: T.OutboxEntry): void {
    const sent = entry.status === 'sent' ? entry.message : undefined
    if (sent) this.timelines.each(entry.conversationId, (t) => t.put(sent))
    if (entry.kind === 'read' && entry.status === 'sent' && entry.seq !== undefined && this.auth.user)
      this.conversations.markerMoved(entry.conversationId, this.auth.user.id, entry.seq)
    this.timelines.each(entry.conversationId, (t) => t.outboxChanged())
    this.emitter.emit('outbox', entry)
  }

  private async after(conversationId: string, afterSeq: number) {
    const page = await this.history(conversationId, { afterSeq, limit: 100 })
    return { items: page.items, more: page.next_after_seq !== null }
  }

  private whenOpen(next = false): Promise<void> {
    if (this.connection.state === 'open' && !next) return Promise.resolve()
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
    this.auth.keepFresh(
      (token) => this.connection.send({ type: 'auth', access_token: token }),
      (err) => this.emitter.emit('error', err),
      () => this.backoffDelay(1),
    )
  }

  private async onSession(e: T.ChatEvents['session']): Promise<void> {
    if (e.status === 'expired' || e.status === 'signed_out')
      this.reset(e.status === 'expired' ? 'session_expired' : 'signed_out')
    if (e.status === 'signed_in') await this.loadUser()
    this.emitter.emit('session', e)
  }

  /** Binds the cursors and the outbox to the signed-in user (sends made from now on are theirs). */
  private async loadUser(): Promise<void> {
    const user = this.auth.user
    if (!user || this.loadedFor === user.id) return
    this.loadedFor = user.id
    await Promise.all([this.delivery.load(user.id), this.outbox.load(user.id), this.changes.load(user.id)])
  }

  private reset(reason: 'signed_out' | 'session_expired'): void {
    this.auth.stopKeepingFresh()
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
