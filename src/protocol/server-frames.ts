import Type, { type Static } from 'typebox'
import { ErrorCodeSchema } from './errors.js'
import { ClientMsgId, frame, Seq, Uuid } from './frames.js'
import { MessageSchema, ReactionSchema, ThreadSchema } from './message.js'

/**
 * Every frame the server sends, as a schema (for the AsyncAPI document) and as the `ServerFrame`
 * union that `ws/outbound.ts` builds frames from, so a frame the document does not describe
 * cannot be sent.
 */
export const ServerFrames = [
  frame(
    'message.new',
    { conversation_id: Uuid, message: MessageSchema },
    'A committed message; every socket of every member gets it once, in seq order.',
  ),
  frame(
    'message.ack',
    { client_msg_id: Type.Union([ClientMsgId, Type.Null()]), message: MessageSchema },
    'Your message.send was committed (or was a retry of this message).',
  ),
  frame('message.updated', { conversation_id: Uuid, message: MessageSchema }, 'A message was edited.'),
  frame(
    'message.deleted',
    { conversation_id: Uuid, message: MessageSchema },
    'A message was deleted (tombstone: content empty, seq kept).',
  ),
  frame(
    'message.thread',
    { conversation_id: Uuid, message_id: Uuid, seq: Seq, change_seq: Seq, thread: ThreadSchema },
    "A reply changed its root's thread summary. Sent after the root's message.new; apply it only when its `change_seq` is higher than the message's (see message.changed).",
  ),
  frame(
    'message.reactions',
    {
      conversation_id: Uuid,
      message_id: Uuid,
      seq: Seq,
      rev: Seq,
      change_seq: Seq,
      reactions: Type.Array(ReactionSchema),
    },
    "A message's reactions changed: its whole new summary (`me` for you). Sent after the message's message.new. `rev` grows with every change to that message's reactions: apply a summary only when its rev is higher than the one you hold, and a missed one is made good by the next.",
  ),
  frame(
    'message.pinned',
    {
      conversation_id: Uuid,
      message_id: Uuid,
      seq: Seq,
      pinned_by: Type.Union([Uuid, Type.Null()]),
      pinned_at: Type.String({ format: 'date-time' }),
      change_seq: Seq,
    },
    'A message was pinned. Sent after its message.new.',
  ),
  frame(
    'message.unpinned',
    { conversation_id: Uuid, message_id: Uuid, seq: Seq, change_seq: Seq },
    'A message was unpinned (by a member, or because it was deleted).',
  ),
  frame(
    'messages.expired',
    {
      conversation_id: Uuid,
      seqs: Type.Array(Seq, { minItems: 1, maxItems: 500 }),
      expired_at: Type.String({ format: 'date-time' }),
    },
    "The conversation's retention expired these messages: each is now a tombstone as a deleted message is (content and attachments empty, `deleted_at` = `expired_at`, no reactions, mentions, pin or thread; `seq`, sender and `created_at` kept). One frame per conversation per batch of the retention job, sent after the messages themselves; no message.deleted or message.unpinned is sent for them.",
  ),
  frame(
    'message.changed',
    { conversation_id: Uuid, message: MessageSchema },
    'In answer to `sync` with `changes`: the current state of a message you already had (seq at or below your cursor) that changed after your change position (edited, deleted, reactions, thread, pin). Replace your copy when this `change_seq` is higher than yours. Sent in change order, then `changes.synced`.',
  ),
  frame(
    'changes.synced',
    {
      conversation_id: Uuid,
      change_seq: Seq,
      complete: Type.Boolean(),
    },
    'The `message.changed` frames for a conversation are all sent: store `change_seq` as your change position. `complete: false`: more messages changed than one sync re-sends (1,000 per conversation); re-read the history you hold instead.',
  ),
  frame('read', { conversation_id: Uuid, user_id: Uuid, seq: Seq }, "A member's read marker moved."),
  frame(
    'typing',
    {
      conversation_id: Uuid,
      user_id: Uuid,
      state: Type.Union([Type.Literal('start'), Type.Literal('stop')]),
    },
    'A member started or stopped typing (a start repeats at most every TYPING_RELAY_INTERVAL_MS while they type; a stop follows every start, sent by the server after TYPING_TTL_MS when the member does not).',
  ),
  frame(
    'presence',
    { user_id: Uuid, status: Type.Union([Type.Literal('online'), Type.Literal('offline')]) },
    'A peer in a shared conversation came online or went offline.',
  ),
  frame('conversation.created', { conversation_id: Uuid }, 'You are in a new conversation (user socket).'),
  frame(
    'conversation.updated',
    { conversation_id: Uuid, title: Type.Union([Type.String(), Type.Null()]) },
    'A group was renamed.',
  ),
  frame(
    'member.added',
    { conversation_id: Uuid, user_id: Uuid, role: Type.String() },
    'Someone joined a conversation.',
  ),
  frame(
    'member.updated',
    { conversation_id: Uuid, user_id: Uuid, role: Type.String() },
    "A member's role changed (the owner appointed or demoted an admin).",
  ),
  frame(
    'member.removed',
    { conversation_id: Uuid, user_id: Uuid },
    'Someone left or was removed; if it was you, nothing more arrives from it.',
  ),
  frame(
    'error',
    {
      code: ErrorCodeSchema,
      message: Type.String(),
      client_msg_id: Type.Optional(Type.Union([Type.String(), Type.Null()])),
    },
    'A frame was refused; the socket stays open.',
  ),
  frame('pong', {}, 'Answer to ping.'),
  frame(
    'ready',
    { user_id: Uuid, protocol: Type.Integer(), conversation_id: Type.Optional(Uuid) },
    'Sent first, once the socket is registered for delivery.',
  ),
] as const

export const ServerFrame = Type.Union([...ServerFrames])
export type ServerFrame = Static<typeof ServerFrame>
