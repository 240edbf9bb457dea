import type { Message } from './rest-types.js'
import type { OutboxEntry } from './types.js'

/** A message to edit or delete: a stored message, an outbox entry (even unsent), or ids. */
export type MessageRef = Message | OutboxEntry | { conversationId: string; messageId: string }

/** Which message an edit or delete is about: its id, or the client_msg_id of a send still queued. */
export function targetOf(target: MessageRef): {
  conversationId: string
  messageId?: string
  targetId?: string
} {
  if ('kind' in target) {
    if (target.message) return { conversationId: target.conversationId, messageId: target.message.id }
    if (target.messageId) return { conversationId: target.conversationId, messageId: target.messageId }
    return { conversationId: target.conversationId, targetId: target.id }
  }
  if ('seq' in target) return { conversationId: target.conversation_id, messageId: target.id }
  return { conversationId: target.conversationId, messageId: target.messageId }
}
