import Type, { type Static } from 'typebox'
import { MessageSchema } from './message.js'

/**
 * The events that leave the service through the outbox (webhooks, Web Push), defined once:
 * the outbox stores `data` as given here, a webhook body is `{ type, timestamp, data }`, and
 * docs/notifications.md ("Events") documents the same list. `test/integration/outbox-events.test.ts`
 * validates every event the services write against these schemas.
 */
const Uuid = Type.String({ format: 'uuid' })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

/** A message as the REST API returns it (`Message`), and the conversation it is in. */
const MessageData = Type.Object({ conversation_id: Uuid, message: MessageSchema })

export const OutboxPayloads = {
  /** A new message (one event per message, written in the group commit's transaction). */
  'message.created': MessageData,
  /** An edit: `message` is the message after it. */
  'message.updated': MessageData,
  /** A delete: `message` is the tombstone (content empty, `deleted_at` set, `seq` kept). */
  'message.deleted': MessageData,
  'conversation.created': Type.Object({
    conversation_id: Uuid,
    kind: Type.Union([Type.Literal('direct'), Type.Literal('group')]),
    title: Nullable(Type.String()),
    created_by: Uuid,
    member_ids: Type.Array(Uuid),
  }),
  'member.added': Type.Object({
    conversation_id: Uuid,
    user_id: Uuid,
    role: Type.String(),
    added_by: Uuid,
    /** The conversation's last seq when they joined: they see the messages after it. */
    seq: Type.Integer({ minimum: 0 }),
  }),
  'member.removed': Type.Object({
    conversation_id: Uuid,
    user_id: Uuid,
    /** Equal to `user_id` when they left on their own. */
    removed_by: Uuid,
    /** The last seq they may see. */
    seq: Type.Integer({ minimum: 0 }),
  }),
  /** An account was deleted (soft delete: its messages keep their `sender_id`). */
  'user.deleted': Type.Object({ user_id: Uuid }),
} as const

export type OutboxEventType = keyof typeof OutboxPayloads
export const OUTBOX_EVENT_TYPES = Object.keys(OutboxPayloads) as OutboxEventType[]

/** The payload of one event type. */
export type OutboxPayload<T extends OutboxEventType> = Static<(typeof OutboxPayloads)[T]>

/** Sent only by `POST /api/v1/admin/webhooks/{id}/test`, never through the outbox. */
export const WEBHOOK_TEST_EVENT = 'webhook.test'

/** An event a service records, in the transaction of the change. */
export type NewOutboxEvent = {
  [T in OutboxEventType]: { type: T; conversationId: string | null; data: OutboxPayload<T> }
}[OutboxEventType]
