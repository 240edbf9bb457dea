import type { MessageView } from '../protocol/message.js'
import type { AttachmentMeta, ConversationRow, MessageRow } from '../store/schema.js'

export type { MessageView }

export const toMessageView = (m: MessageRow): MessageView => ({
  id: m.id,
  conversation_id: m.conversationId,
  seq: m.seq,
  sender_id: m.senderId,
  content: m.content,
  client_msg_id: m.clientMsgId,
  created_at: m.createdAt.toISOString(),
  edited_at: m.editedAt?.toISOString() ?? null,
  deleted_at: m.deletedAt?.toISOString() ?? null,
  attachments: m.attachments.map(attachmentView),
})

const attachmentView = (a: AttachmentMeta) => ({
  ...a,
  url: `/api/v1/chat/attachments/${a.id}`,
  // Only images whose header was read as one (width set) have a thumbnail.
  thumbnail_url: a.width === null ? null : `/api/v1/chat/attachments/${a.id}?variant=thumbnail`,
})

export interface MemberView {
  user_id: string
  full_name: string
  role: 'owner' | 'admin' | 'member'
  last_read_seq: number
}

export interface ConversationView {
  id: string
  kind: 'direct' | 'group'
  title: string | null
  created_by: string | null
  last_seq: number
  last_activity_at: string
  created_at: string
  members: MemberView[]
  last_message: MessageView | null
  unread_count: number
}

export const baseConversationView = (c: ConversationRow) => ({
  id: c.id,
  kind: c.kind,
  title: c.title,
  created_by: c.createdBy,
  last_seq: c.lastSeq,
  last_activity_at: c.lastActivityAt.toISOString(),
  created_at: c.createdAt.toISOString(),
})
