import type { MessageView } from '../services/views.js'

/**
 * Everything that changes is published as one of these, after its transaction commits.
 * Channel naming lives here too: conversation-scoped events go to `conv:<id>`, events a user
 * must see before they are subscribed to the conversation go to `user:<id>`.
 */
export type ChatEvent = ConversationEvent | AccountEvent

/** The account was deleted or deactivated: its sockets close. */
export interface AccountEvent {
  type: 'account.closed'
  user_id: string
}

export type ConversationEvent =
  /** `members_version`: the conversation's membership version when the message was stored. */
  | { type: 'message.created'; conversation_id: string; message: MessageView; members_version: number }
  | { type: 'message.updated'; conversation_id: string; message: MessageView }
  | { type: 'message.deleted'; conversation_id: string; message: MessageView }
  | { type: 'read'; conversation_id: string; user_id: string; seq: number }
  | { type: 'typing'; conversation_id: string; user_id: string; state: 'start' | 'stop' }
  | { type: 'presence'; conversation_id: string; user_id: string; status: 'online' | 'offline' }
  | { type: 'conversation.created'; conversation_id: string; member_ids: string[] }
  | { type: 'conversation.updated'; conversation_id: string; title: string | null }
  /** `seq`: the conversation's last seq when the member joined; they see messages after it. */
  | { type: 'member.added'; conversation_id: string; user_id: string; role: string; seq: number }
  | { type: 'member.updated'; conversation_id: string; user_id: string; role: string }
  /** `seq`: the conversation's last seq at removal; nothing after it reaches the removed member. */
  | { type: 'member.removed'; conversation_id: string; user_id: string; seq: number; members_version: number }

export const conversationChannel = (id: string): string => `conv:${id}`
export const userChannel = (id: string): string => `user:${id}`

/** Where an event is published. */
export function channelsOf(event: ChatEvent): string[] {
  if (event.type === 'account.closed') return [userChannel(event.user_id)]
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
