import type { ChatError } from './errors.js'
import type { Conversation, Message } from './rest-types.js'

export type Awaitable<T> = T | Promise<T>

/** The tokens of one signed-in session. */
export interface Tokens {
  accessToken: string
  refreshToken: string
  /** When the access token expires, in ms since the epoch (client clock). */
  accessExpiresAt: number
}

/**
 * Where the session's tokens live. The SDK re-reads it before every refresh, so several tabs
 * sharing one store (localStorage) do not spend the same refresh token twice.
 */
export interface TokenStore {
  get(): Awaitable<Tokens | undefined>
  set(tokens: Tokens | undefined): Awaitable<void>
}

/**
 * Per conversation, the last `seq` delivered to the app: where the next connection resumes; and
 * (optional) the change position, up to which every change to the messages held was applied.
 * A store without `loadChanges`/`setChange` keeps change positions in memory only: after a
 * restart they start from the conversation list, which is right for an app that re-reads the
 * messages it shows (see docs/client.md).
 */
export interface CursorStore {
  load(userId: string): Awaitable<Record<string, number>>
  set(userId: string, conversationId: string, seq: number): Awaitable<void>
  /** Forgets the conversation's cursor and its change position. */
  remove(userId: string, conversationId: string): Awaitable<void>
  loadChanges?(userId: string): Awaitable<Record<string, number>>
  setChange?(userId: string, conversationId: string, changeSeq: number): Awaitable<void>
}

/** The outbox's durable copy: an entry is put when composed and removed once settled `sent`. */
export interface OutboxStore {
  load(userId: string): Awaitable<OutboxEntry[]>
  put(userId: string, entry: OutboxEntry): Awaitable<void>
  remove(userId: string, id: string): Awaitable<void>
}

/** The subset of `localStorage` the adapters use (any Storage works). */
export interface StorageLike {
  getItem(key: string): string | null
  setItem(key: string, value: string): void
  removeItem(key: string): void
}

/** The parts of a WebSocket the SDK uses: the browser's, Node 22's global, and `ws` all fit. */
export interface WebSocketLike {
  readonly readyState: number
  readonly protocol: string
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((ev: unknown) => void) | null
  onmessage: ((ev: { data: unknown }) => void) | null
  onclose: ((ev: { code: number; reason: string }) => void) | null
  onerror: ((ev: unknown) => void) | null
}
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => WebSocketLike

/** The parts of a fetch Response the SDK uses. */
export interface ResponseLike {
  readonly status: number
  readonly ok: boolean
  readonly headers: { get(name: string): string | null }
  text(): Promise<string>
}
export interface RequestInitLike {
  method?: string
  headers?: Record<string, string>
  body?: string
  signal?: AbortSignal
}
export type FetchLike = (url: string, init?: RequestInitLike) => Promise<ResponseLike>

export interface ChatClientOptions {
  /** The server's origin, e.g. `https://chat.example.com` (WebSocket URLs are derived from it). */
  baseUrl: string
  /** Default: in memory (the session ends with the page). Browsers: `new LocalStorageTokenStore()`. */
  tokenStore?: TokenStore
  /** Default: in memory. */
  cursorStore?: CursorStore
  /** Default: in memory (pending messages die with the page). */
  outboxStore?: OutboxStore
  /** Default: `globalThis.fetch`. */
  fetch?: FetchLike
  /** Default: `globalThis.WebSocket`, else the `ws` package (Node 20). */
  WebSocket?: WebSocketConstructor
  /**
   * How the socket authenticates: `ticket` (default; POST /ws-ticket, then `?ticket=`, what
   * browsers must do) or `protocol` (the `bearer, <token>` subprotocol pair).
   */
  socketAuth?: 'ticket' | 'protocol'
  /** Reconnect backoff: full jitter over min(capMs, baseMs * 2^attempt). Defaults 500 / 30 000. */
  backoff?: { baseMs?: number; capMs?: number }
  /**
   * Heartbeat watchdog: the SDK sends an application `ping` every `intervalMs` of silence and
   * drops the socket (and reconnects) when nothing arrives for `timeoutMs`. Defaults 15 000 / 40 000.
   */
  heartbeat?: { intervalMs?: number; timeoutMs?: number }
  /** A REST request with no answer within this is aborted (and retried when safe). Default 15 000. */
  requestTimeoutMs?: number
  /** At most one `typing: start` per conversation per this interval. Default 3 000. */
  typingThrottleMs?: number
  /** Refresh the access token this long before it expires. Default 30 000. */
  refreshAheadMs?: number
  /** Randomness for the backoff jitter (tests pass a seeded one). Default Math.random. */
  random?: () => number
}

/** The socket's state machine: closed → connecting → open → reconnecting → connecting … */
export type ConnectionState = 'closed' | 'connecting' | 'open' | 'reconnecting'

/** Why the socket is `closed`. */
export type ClosedReason =
  | 'not_started'
  /** The app called disconnect() or close(). */
  | 'disconnected'
  /** Signed out, or no session to connect with. */
  | 'signed_out'
  /** The session cannot be refreshed (expired, revoked, or a reused refresh token). */
  | 'session_expired'
  /** Close code 4403: the account was closed. */
  | 'forbidden'
  /** Close code 1008: the server found the client broken; reconnecting would repeat it. */
  | 'policy_violation'

export interface StateChange {
  state: ConnectionState
  previous: ConnectionState
  /** Set when `state` is `closed`. */
  reason?: ClosedReason
  /** Set when `state` is `reconnecting`: the delay before the next attempt. */
  retryInMs?: number
  /** Reconnect attempts since the socket was last open. */
  attempt: number
  /** What ended the previous socket, when something did. */
  closeCode?: number
  error?: ChatError
}

export type OutboxKind = 'send' | 'edit' | 'delete' | 'read'
export type OutboxStatus = 'pending' | 'sent' | 'failed'

/**
 * One write the user made. Sends get their `client_msg_id` (= `id`, a UUIDv7) when composed, so
 * retries after reconnects can never store the message twice. Entries of one conversation are
 * performed in the order they were made.
 */
export interface OutboxEntry {
  id: string
  kind: OutboxKind
  conversationId: string
  status: OutboxStatus
  /** ISO time of composition. */
  createdAt: string
  /** send, edit: the text. */
  content?: string
  /** edit, delete: the message's id… */
  messageId?: string
  /** …or, for a message still in the outbox, its client_msg_id (resolved once it is sent). */
  targetId?: string
  /** read: the marker. */
  seq?: number
  /** Times it was put on the wire. */
  attempts: number
  /** When `sent`: the stored message (send, edit, delete). */
  message?: Message
  /** When `failed`: why (the server's problem or error frame). */
  error?: { code: string; message: string; status?: number }
}

export interface TypingEvent {
  conversationId: string
  userId: string
  typing: boolean
}
export interface PresenceEvent {
  userId: string
  status: 'online' | 'offline'
}
export interface ReadEvent {
  conversationId: string
  userId: string
  seq: number
}
export interface UnreadEvent {
  conversationId: string
  count: number
}
export interface MessageEvent {
  conversationId: string
  message: Message
}
/**
 * A message this device may hold changed: edited, deleted, reacted to, replied to (thread), pinned
 * or unpinned, live or re-sent by `sync` after a disconnection. `changes` holds the fields that
 * changed (all of them for an edit, a delete or a re-send); merge them into your copy when
 * `changeSeq` is higher than its `change_seq`, and set that to `changeSeq`. Timelines do it.
 */
export interface MessagesExpiredEvent {
  conversationId: string
  seqs: number[]
  /** ISO 8601: the tombstones' `deleted_at`. */
  expiredAt: string
}

export interface MessageChangedEvent {
  conversationId: string
  messageId: string
  seq: number
  changeSeq: number
  changes: Partial<Message>
}
/**
 * The changes `sync` re-sent for a conversation are all applied. `complete: false`: more messages
 * changed than the server re-sends in one go; re-read what you hold (timelines reload themselves).
 */
export interface ChangesSyncedEvent {
  conversationId: string
  changeSeq: number
  complete: boolean
}
/** Messages that did not arrive live were fetched from history and delivered (in order). */
export interface ResyncedEvent {
  conversationId: string
  /** The cursor before the fill. */
  fromSeq: number
  /** The cursor after it. */
  toSeq: number
  reason: 'gap' | 'resume_failed' | 'catch_up'
}
/**
 * The conversation's delivery cannot continue from the cursor: `removed` (you left or were
 * removed; nothing after that arrives), `cursor_ahead` (the server has fewer messages than the
 * cursor says, e.g. restored from a backup: the cursor was reset to the server's last seq).
 */
export interface DiscontinuityEvent {
  conversationId: string
  reason: 'removed' | 'cursor_ahead'
  atSeq: number
}
export type ConversationChange =
  | { type: 'created'; conversationId: string }
  | { type: 'updated'; conversationId: string; title: string | null }
  | { type: 'member.added'; conversationId: string; userId: string; role: string }
  | { type: 'member.updated'; conversationId: string; userId: string; role: string }
  | { type: 'member.removed'; conversationId: string; userId: string }

export interface SessionEvent {
  status: 'signed_in' | 'refreshed' | 'signed_out' | 'expired'
  /** For `expired`: the refresh's refusal (e.g. a refresh token that was already used). */
  error?: ChatError
}

/** Every event `ChatClient.on` can subscribe to. */
export interface ChatEvents {
  state: StateChange
  /** A committed message, exactly once and in seq order per conversation. */
  message: MessageEvent
  'message.updated': MessageEvent
  'message.deleted': MessageEvent
  'message.changed': MessageChangedEvent
  /** The conversation's retention expired these messages; timelines already show them as tombstones. */
  'messages.expired': MessagesExpiredEvent
  'changes.synced': ChangesSyncedEvent
  /** An outbox entry was added or changed status. */
  outbox: OutboxEntry
  typing: TypingEvent
  presence: PresenceEvent
  read: ReadEvent
  unread: UnreadEvent
  /** The conversation list changed (order, last message, unread counts, titles, members). */
  conversations: readonly Conversation[]
  conversation: ConversationChange
  resynced: ResyncedEvent
  discontinuity: DiscontinuityEvent
  session: SessionEvent
  /** Something went wrong that the SDK handles itself (reported for logs and UI hints). */
  error: ChatError
}
