/**
 * @chat-api/client: the chat API's TypeScript SDK (browsers and Node 20+). See README.md for an
 * example and docs/client.md (in the repository) for its guarantees.
 */
export { AuthApi } from './auth.js'
export { ChatClient, type MessageRef } from './client.js'
export { ConversationList } from './conversations.js'
export { ChatError, type ErrorCode, ProblemError } from './errors.js'
export { type ClientFrame, CloseCode, PROTOCOL_VERSION, type ServerFrame } from './protocol.js'
export { RestClient, type TokenSource } from './rest.js'
export type {
  Conversation,
  ConversationMember,
  CreateGroupInput,
  CurrentUser,
  HistoryPage,
  HttpMethod,
  Message,
  Operation,
  PathParams,
  PathsWith,
  Problem,
  PublicUser,
  paths,
  QueryParams,
  RegisterInput,
  RequestBody,
  RequestOptions,
  ResponseBody,
} from './rest-types.js'
export {
  LocalStorageCursorStore,
  LocalStorageOutboxStore,
  LocalStorageTokenStore,
  MemoryCursorStore,
  MemoryOutboxStore,
  MemoryTokenStore,
} from './stores.js'
export { Timeline, type TimelineEvents } from './timeline.js'
export type {
  Awaitable,
  ChangesSyncedEvent,
  ChatClientOptions,
  ChatEvents,
  ClosedReason,
  ConnectionState,
  ConversationChange,
  CursorStore,
  DiscontinuityEvent,
  FetchLike,
  MessageChangedEvent,
  MessageEvent,
  MessagesExpiredEvent,
  OutboxEntry,
  OutboxKind,
  OutboxStatus,
  OutboxStore,
  PresenceEvent,
  ReadEvent,
  RequestInitLike,
  ResponseLike,
  ResyncedEvent,
  SessionEvent,
  StateChange,
  StorageLike,
  TokenStore,
  Tokens,
  TypingEvent,
  UnreadEvent,
  WebSocketConstructor,
  WebSocketLike,
} from './types.js'
