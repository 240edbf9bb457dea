import type { ChatEvent } from '../protocol/events.js'

export type RemovalEvent = Extract<ChatEvent, { type: 'member.removed' }>

/** The removal of `userId` from a conversation at `at`, for a socket that did not hear its event (ws/follower.ts). */
export const removal = (
  conversationId: string,
  userId: string,
  at: { seq: number; membersVersion: number },
): RemovalEvent => ({
  type: 'member.removed',
  conversation_id: conversationId,
  user_id: userId,
  seq: at.seq,
  members_version: at.membersVersion,
})
