import Type, { type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { normalizeIdKeys, normalizeIds } from '../lib/ids.js'

/**
 * Every WebSocket frame, both directions, defined once. Types come from these schemas, inbound
 * frames are validated against them, and `docs/asyncapi.yaml` is generated from them
 * (`npm run asyncapi`; a test fails when the document is stale).
 *
 * Versioning: additive only (new optional fields, new types); an existing name never changes meaning.
 */
export const PROTOCOL_VERSION = 1

export const Uuid = Type.String({ format: 'uuid' })
export const Seq = Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })
export const ClientMsgId = Type.String({ minLength: 1, maxLength: 128 })
const OptionalConversation = Type.Optional(Uuid)

export const frame = <T extends string, P extends Record<string, TSchema>>(
  type: T,
  props: P,
  description: string,
) =>
  Type.Object(
    { type: Type.Literal(type), ...props },
    { additionalProperties: false, description, title: type },
  )

// Client → server
export const MessageSendFrame = frame(
  'message.send',
  {
    content: Type.String({ maxLength: 65536 }),
    client_msg_id: Type.Optional(ClientMsgId),
    conversation_id: OptionalConversation,
    attachment_ids: Type.Optional(Type.Array(Uuid, { maxItems: 10, uniqueItems: true })),
    reply_to: Type.Optional(Type.Union([Uuid, Type.Null()])),
    mentions: Type.Optional(Type.Array(Type.Union([Uuid, Type.Literal('@all')]), { maxItems: 50 })),
  },
  'Send a message. Answered by `message.ack` once committed, or `error` with the same client_msg_id. ' +
    '`conversation_id` is required on the user socket. `reply_to`: a message of the same conversation; ' +
    '`mentions`: member ids, or "@all" (group admins and owners). `attachment_ids`: uploaded attachments (see ' +
    'POST /api/v1/chat/conversations/{id}/attachments), up to 10; with them `content` may be empty.',
)
const Emoji = Type.String({ minLength: 1, maxLength: 64 })
export const ReactionAddFrame = frame(
  'reaction.add',
  { message_id: Uuid, emoji: Emoji },
  'React to a message (idempotent): one emoji or a :short_name: (see the REST description). Members get `message.reactions`.',
)
export const ReactionRemoveFrame = frame(
  'reaction.remove',
  { message_id: Uuid, emoji: Emoji },
  'Remove your reaction (idempotent).',
)
export const MessageEditFrame = frame(
  'message.edit',
  { message_id: Uuid, content: Type.String({ maxLength: 65536 }) },
  'Edit your message.',
)
export const MessageDeleteFrame = frame(
  'message.delete',
  { message_id: Uuid },
  'Delete a message (sender or group admin).',
)
export const TypingFrame = frame(
  'typing',
  { state: Type.Union([Type.Literal('start'), Type.Literal('stop')]), conversation_id: OptionalConversation },
  'Typing indicator; relayed, never stored. Send start again while typing (a start expires after TYPING_TTL_MS) and stop when done. Per conversation, at most one start is relayed per TYPING_RELAY_INTERVAL_MS (3 s by default; one sent sooner is relayed when the interval has passed, unless a stop came first), and a stop only after a relayed start.',
)
export const ReadFrame = frame(
  'read',
  { seq: Seq, conversation_id: OptionalConversation },
  'Move your read marker forward.',
)
export const SyncFrame = frame(
  'sync',
  {
    cursors: Type.Record(Uuid, Seq, { maxProperties: 10000 }),
    changes: Type.Optional(Type.Record(Uuid, Seq, { maxProperties: 10000 })),
  },
  'Resume: deliver every message after each given seq, then live ones, without gap or duplicate (never ' +
    'repeating what this socket already sent). Strictly in order when it is the first frame on a user socket ' +
    'opened with `?resume=true`; otherwise live messages that beat it come first. `changes`: your change ' +
    'position per conversation (the highest `change_seq` up to which you have every change, see ' +
    '`changes.synced`); the messages at or below your cursor that changed after it are re-sent as ' +
    '`message.changed`, then `changes.synced`. Conversations missing from `cursors` are ignored there.',
)
export const PingFrame = frame('ping', {}, 'Application-level ping; answered by `pong`.')
export const AuthFrame = frame(
  'auth',
  { access_token: Type.String({ minLength: 1, maxLength: 4096 }) },
  'Present a fresh access token before the current one expires (else the socket closes with 4401).',
)

export const ClientFrame = Type.Union([
  MessageSendFrame,
  MessageEditFrame,
  MessageDeleteFrame,
  ReactionAddFrame,
  ReactionRemoveFrame,
  TypingFrame,
  ReadFrame,
  SyncFrame,
  PingFrame,
  AuthFrame,
])
export type ClientFrame = Static<typeof ClientFrame>
export const CLIENT_FRAMES = ClientFrame.anyOf

const clientCheck = Compile(ClientFrame)
const byType = new Map(CLIENT_FRAMES.map((s) => [s.properties.type.const as string, Compile(s)]))

export type FrameError = { code: 'invalid_frame' | 'unknown_type'; message: string }

/** Validates a parsed inbound frame; on failure says which field is wrong. */
export function checkClientFrame(value: unknown): ClientFrame | FrameError {
  if (clientCheck.Check(value)) {
    // Ids compare case-insensitively: the frame names our objects in their stored (lower) case.
    if (value.type === 'sync') {
      value.cursors = normalizeIdKeys(value.cursors)
      if (value.changes) value.changes = normalizeIdKeys(value.changes)
    }
    return normalizeIds(value)
  }
  const type = value && typeof value === 'object' ? (value as { type?: unknown }).type : undefined
  const checker = typeof type === 'string' ? byType.get(type) : undefined
  if (!checker)
    return { code: 'unknown_type', message: `unknown frame type ${JSON.stringify(type)?.slice(0, 64)}` }
  const [first] = checker.Errors(value)
  return {
    code: 'invalid_frame',
    message: first ? `${first.instancePath || '/'} ${first.message}` : 'invalid frame',
  }
}
