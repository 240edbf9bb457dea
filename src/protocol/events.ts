import Type, { type Static, type TSchema } from 'typebox'
import { Compile } from 'typebox/compile'
import { MessageSchema, ThreadSchema } from './message.js'

/**
 * Everything that changes is published as one of these, after its transaction commits, and
 * travels between instances inside an `Envelope`. They are internal (clients see server frames,
 * `server-frames.ts`), but another instance may run another version, so an envelope is checked
 * against these schemas before it is delivered.
 *
 * Channel naming lives here too: conversation-scoped events go to `conv:<id>`, events a user must
 * see before they are subscribed to the conversation go to `user:<id>`.
 */
const Id = Type.String({ maxLength: 64 })
const Count = Type.Integer({ minimum: 0 })
const Nullable = <T extends TSchema>(t: T) => Type.Union([t, Type.Null()])

/**
 * Who reacted with what, by user id: the recipients' `me` flags are worked out from it on each
 * instance (the summary itself lists only the first few users). Bounded by the reaction limits.
 */
const Reactors = Type.Record(Type.String({ maxLength: 64 }), Type.Array(Type.String({ maxLength: 64 })))
const ReactionTotals = Type.Array(
  Type.Object({ emoji: Type.String(), count: Count, user_ids: Type.Array(Id) }),
)

const event = <T extends string, P extends Record<string, TSchema>>(type: T, props: P) =>
  Type.Object({ type: Type.Literal(type), ...props })

/** The account was deleted or deactivated: its sockets close. */
export const AccountClosed = event('account.closed', { user_id: Id })

/**
 * `blocker_id` started (`blocked`) or stopped blocking `blocked_id`. Sent to the blocked user's
 * sockets, on every instance, which from then on drop (or again relay) the blocker's presence
 * and typing. Clients see no frame for it.
 */
export const BlockChanged = event('block.changed', {
  blocker_id: Id,
  blocked_id: Id,
  blocked: Type.Boolean(),
})

/**
 * `change_seq` on the events about a message: the conversation's change counter for that change
 * (store/changes.ts); clients keep, per message, the state with the highest one.
 */
const conversationEvents = [
  /** `members_version`: the conversation's membership version when the message was stored. */
  event('message.created', { conversation_id: Id, message: MessageSchema, members_version: Count }),
  /** `reactors`: for the recipients' `me` flags in `message.reactions` (the view's have `me` false). */
  event('message.updated', {
    conversation_id: Id,
    message: MessageSchema,
    reactors: Type.Optional(Reactors),
  }),
  event('message.deleted', {
    conversation_id: Id,
    message: MessageSchema,
    reactors: Type.Optional(Reactors),
  }),
  /** A root's thread summary after a reply was committed. */
  event('message.thread', {
    conversation_id: Id,
    message_id: Id,
    seq: Count,
    change_seq: Count,
    thread: ThreadSchema,
  }),
  /** A message's whole reactions summary after a change; `rev` grows with every change of that message. */
  event('message.reactions', {
    conversation_id: Id,
    message_id: Id,
    seq: Count,
    rev: Count,
    change_seq: Count,
    reactions: ReactionTotals,
    reactors: Reactors,
  }),
  event('message.pinned', {
    conversation_id: Id,
    message_id: Id,
    seq: Count,
    pinned_by: Nullable(Id),
    pinned_at: Type.String(),
    change_seq: Count,
  }),
  event('message.unpinned', { conversation_id: Id, message_id: Id, seq: Count, change_seq: Count }),
  /** The retention job tombstoned these messages (one event per conversation per batch; at most 500 seqs). */
  event('messages.expired', {
    conversation_id: Id,
    seqs: Type.Array(Count, { minItems: 1, maxItems: 500 }),
    expired_at: Type.String(),
  }),
  event('read', { conversation_id: Id, user_id: Id, seq: Count }),
  event('typing', {
    conversation_id: Id,
    user_id: Id,
    state: Type.Union([Type.Literal('start'), Type.Literal('stop')]),
  }),
  event('presence', {
    conversation_id: Id,
    user_id: Id,
    status: Type.Union([Type.Literal('online'), Type.Literal('offline')]),
  }),
  event('conversation.created', { conversation_id: Id, member_ids: Type.Array(Id) }),
  event('conversation.updated', { conversation_id: Id, title: Type.Union([Type.String(), Type.Null()]) }),
  /** `seq`: the conversation's last seq when the member joined; they see messages after it. */
  event('member.added', { conversation_id: Id, user_id: Id, role: Type.String(), seq: Count }),
  event('member.updated', { conversation_id: Id, user_id: Id, role: Type.String() }),
  /** `seq`: the conversation's last seq at removal; nothing after it reaches the removed member. */
  event('member.removed', { conversation_id: Id, user_id: Id, seq: Count, members_version: Count }),
] as const

export const ConversationEvent = Type.Union([...conversationEvents])
export type ConversationEvent = Static<typeof ConversationEvent>
export type AccountEvent = Static<typeof AccountClosed>

export const ChatEvent = Type.Union([AccountClosed, BlockChanged, ...conversationEvents])
export type ChatEvent = Static<typeof ChatEvent>

/** What travels between instances: the publishing instance (`o`, so it drops its own echo) and the event. */
export const Envelope = Type.Object({ o: Type.String(), e: ChatEvent })
export type Envelope = Static<typeof Envelope>

const envelopeCheck = Compile(Envelope)

/** The envelope in `payload`, or undefined when it is not JSON or not a known event. */
export function parseEnvelope(payload: string): Envelope | undefined {
  let value: unknown
  try {
    value = JSON.parse(payload)
  } catch {
    return undefined
  }
  return envelopeCheck.Check(value) ? value : undefined
}

export const conversationChannel = (id: string): string => `conv:${id}`
export const userChannel = (id: string): string => `user:${id}`

/** Where an event is published. */
export function channelsOf(event: ChatEvent): string[] {
  if (event.type === 'account.closed') return [userChannel(event.user_id)]
  if (event.type === 'block.changed') return [userChannel(event.blocked_id)]
  const conv = conversationChannel(event.conversation_id)
  switch (event.type) {
    case 'conversation.created':
      return event.member_ids.map(userChannel)
    case 'member.added':
    case 'member.removed':
      return [conv, userChannel(event.user_id)]
    default:
      return [conv]
  }
}
