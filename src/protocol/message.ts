import Type, { type Static } from 'typebox'

const Uuid = Type.String({ format: 'uuid' })
const Timestamp = Type.String({ format: 'date-time' })

/**
 * The fields of a message as clients see it, shared by the REST schemas and the WebSocket frames
 * (each wraps them with its own `$id`/title), so the two can never drift apart.
 */
export const messageProperties = {
  id: Uuid,
  conversation_id: Uuid,
  seq: Type.Integer({ minimum: 1 }),
  sender_id: Type.Union([Uuid, Type.Null()]),
  content: Type.String(),
  client_msg_id: Type.Union([Type.String(), Type.Null()]),
  created_at: Timestamp,
  edited_at: Type.Union([Timestamp, Type.Null()]),
  deleted_at: Type.Union([Timestamp, Type.Null()]),
  attachments: Type.Array(
    Type.Object({
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
    }),
    { maxItems: 10 },
  ),
}

export const MessageSchema = Type.Object(messageProperties, { title: 'Message' })

/** A message as clients see it, over REST, over WebSocket and inside broker events. */
export type MessageView = Static<typeof MessageSchema>
