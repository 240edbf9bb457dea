import { and, asc, eq, gt } from 'drizzle-orm'
import type { Db } from './db.js'
import { type AttachmentMeta, conversationMembers, conversations, messages } from './schema.js'

/**
 * The pages of a user's data export (services/export.ts), each a keyset page so that an export
 * of any size is read a page at a time while it is written out.
 */

export interface ExportedMessage {
  id: string
  conversationId: string
  seq: number
  content: string
  clientMsgId: string | null
  createdAt: Date
  editedAt: Date | null
  deletedAt: Date | null
  replyToId: string | null
  attachments: AttachmentMeta[]
}

/** Messages `senderId` sent, by id (UUIDv7: time order) after `afterId`; `messages_sender_idx`. */
export function messagesBySender(
  db: Db,
  senderId: string,
  afterId: string | undefined,
  limit: number,
): Promise<ExportedMessage[]> {
  return db
    .select({
      id: messages.id,
      conversationId: messages.conversationId,
      seq: messages.seq,
      content: messages.content,
      clientMsgId: messages.clientMsgId,
      createdAt: messages.createdAt,
      editedAt: messages.editedAt,
      deletedAt: messages.deletedAt,
      replyToId: messages.replyToId,
      attachments: messages.attachments,
    })
    .from(messages)
    .where(and(eq(messages.senderId, senderId), afterId === undefined ? undefined : gt(messages.id, afterId)))
    .orderBy(asc(messages.id))
    .limit(limit)
}

export interface ExportedMembership {
  conversationId: string
  kind: 'direct' | 'group'
  title: string | null
  role: string
  joinedAt: Date
  lastReadSeq: number
}

/** The conversations `userId` is a member of, by conversation id after `afterId`. */
export function membershipsOf(
  db: Db,
  userId: string,
  afterId: string | undefined,
  limit: number,
): Promise<ExportedMembership[]> {
  return db
    .select({
      conversationId: conversationMembers.conversationId,
      kind: conversations.kind,
      title: conversations.title,
      role: conversationMembers.role,
      joinedAt: conversationMembers.joinedAt,
      lastReadSeq: conversationMembers.lastReadSeq,
    })
    .from(conversationMembers)
    .innerJoin(conversations, eq(conversations.id, conversationMembers.conversationId))
    .where(
      and(
        eq(conversationMembers.userId, userId),
        afterId === undefined ? undefined : gt(conversationMembers.conversationId, afterId),
      ),
    )
    .orderBy(asc(conversationMembers.conversationId))
    .limit(limit)
}
