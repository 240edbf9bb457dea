import Type, { type Static } from 'typebox'

const Uuid = Type.String({ format: 'uuid' })
const Timestamp = Type.String({ format: 'date-time' })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

/** The message a reply answers; `excerpt` is null once that message was deleted. */
export const ReplyToSchema = Type.Object(
  {
    id: Uuid,
    seq: Type.Integer({ minimum: 1 }),
    sender_id: Nullable(Uuid),
    excerpt: Nullable(Type.String()),
  },
  { title: 'ReplyTo' },
)

/** The replies to a message: their number, the newest one's time and the first five repliers. */
export const ThreadSchema = Type.Object(
  {
    reply_count: Type.Integer({ minimum: 1 }),
    last_reply_at: Timestamp,
    participants: Type.Array(Uuid, { maxItems: 5 }),
  },
  { title: 'Thread' },
)

/** One emoji on a message: how many reacted, the first few of them, and whether the viewer did. */
export const ReactionSchema = Type.Object(
  {
    emoji: Type.String({ maxLength: 64 }),
    count: Type.Integer({ minimum: 1 }),
    user_ids: Type.Array(Uuid, { maxItems: 5 }),
    me: Type.Boolean(),
  },
  { title: 'Reaction' },
)
export type ReactionView = Static<typeof ReactionSchema>

/**
 * One file of a message. The one definition of it: the export and the moderation snapshot list
 * a message's files with the same fields, less the URLs they do not give.
 */
export const AttachmentSchema = Type.Object({
  id: Uuid,
  filename: Type.String(),
  content_type: Type.String(),
  size: Type.Integer({ minimum: 0 }),
  width: Type.Union([Type.Integer(), Type.Null()], {
    description: 'images only, read from the stored file',
  }),
  height: Type.Union([Type.Integer(), Type.Null()]),
  url: Type.String({ description: 'GET it (with your token) for a 302 to a short-lived download URL' }),
  thumbnail_url: Type.Union([Type.String(), Type.Null()], {
    description: 'images only: the same, for a WebP at most 320 px on its longest side',
  }),
})

/**
 * The fields of a message as clients see it, shared by the REST schemas and the WebSocket frames
 * (each wraps them with its own `$id`/title), so the two can never drift apart.
 */
export const messageProperties = {
  id: Uuid,
  conversation_id: Uuid,
  seq: Type.Integer({ minimum: 1 }),
  sender_id: Nullable(Uuid),
  content: Type.String(),
  client_msg_id: Nullable(Type.String()),
  created_at: Timestamp,
  edited_at: Nullable(Timestamp),
  deleted_at: Nullable(Timestamp),
  reply_to: Nullable(ReplyToSchema),
  thread: Nullable(ThreadSchema),
  reactions: Type.Array(ReactionSchema),
  mentions: Type.Array(Uuid),
  mentions_all: Type.Boolean(),
  pinned_at: Nullable(Timestamp),
  change_seq: Type.Integer({
    minimum: 0,
    maximum: Number.MAX_SAFE_INTEGER,
    description:
      "The conversation's change counter at this message's latest change (edit, delete, reactions, thread, pin); 0 when it never changed. Of two copies of a message, keep the one with the higher change_seq.",
  }),
  attachments: Type.Array(AttachmentSchema, { maxItems: 10 }),
}

export const MessageSchema = Type.Object(messageProperties, { title: 'Message' })

/** A message as clients see it, over REST, over WebSocket and inside broker events. */
export type MessageView = Static<typeof MessageSchema>
