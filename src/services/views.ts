import type { MessageView } from '../protocol/message.js'
import { type MessageExtras, noExtras, type RichMessage } from '../store/message-views.js'
import type { AttachmentMeta, ConversationRow, MessageRow } from '../store/schema.js'

export type { MessageView }

/**
 * A message as clients see it. Without `extras` (a message just stored, or the conversation
 * list's last message) it shows no thread, reactions or pin.
 */
export const toMessageView = (m: MessageRow, extras: MessageExtras = noExtras()): MessageView => ({
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
  reply_to: extras.parent && {
    id: extras.parent.id,
    seq: extras.parent.seq,
    sender_id: extras.parent.senderId,
    excerpt: extras.parent.excerpt,
  },
  thread: extras.thread && {
    reply_count: extras.thread.replyCount,
    last_reply_at: extras.thread.lastReplyAt.toISOString(),
    participants: extras.thread.participants,
  },
  reactions: extras.reactions.map((r) => ({ emoji: r.emoji, count: r.count, user_ids: r.userIds, me: r.me })),
  mentions: m.mentions,
  mentions_all: m.mentionsAll,
  pinned_at: extras.pinnedAt?.toISOString() ?? null,
  change_seq: extras.changeSeq,
})

const attachmentView = (a: AttachmentMeta) => ({
  ...a,
  url: `/api/v1/chat/attachments/${a.id}`,
  // Only images whose header was read as one (width set) have a thumbnail.
  thumbnail_url: a.width === null ? null : `/api/v1/chat/attachments/${a.id}?variant=thumbnail`,
})

export const richView = (r: RichMessage): MessageView => toMessageView(r, r.extras)

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
  change_seq: number
  last_activity_at: string
  created_at: string
  members: MemberView[]
  last_message: MessageView | null
  unread_count: number
  unread_mentions: number
  /** A direct conversation closed by a block (either way): readable, no new messages. */
  blocked: boolean
  retention: RetentionView
  /** The caller's mute (docs/notifications.md, "Mute"). */
  muted: boolean
  muted_until: string | null
}

/**
 * "Muted until unmuted", as stored in `conversation_members.muted_until`: a date no `until` may
 * reach, so "is it muted at T" is one comparison in SQL (`muted_until > T`) for both kinds. The
 * API never shows it: clients see `muted: true, muted_until: null`.
 */
export const MUTED_FOREVER = new Date('9999-12-31T23:59:59.999Z')
/** The latest `until` a timed mute may have (anything later is "until unmuted"). */
export const MUTE_UNTIL_MAX = new Date('9999-01-01T00:00:00.000Z')

export interface MuteView {
  conversation_id: string
  muted: boolean
  /** When the mute ends; null when not muted or muted until unmuted. */
  muted_until: string | null
}

/** A stored `muted_until` as clients see it at `now` (a mute that ended shows as not muted). */
export function muteFields(mutedUntil: Date | null, now = new Date()): Omit<MuteView, 'conversation_id'> {
  if (mutedUntil === null || mutedUntil <= now) return { muted: false, muted_until: null }
  if (mutedUntil.getTime() >= MUTED_FOREVER.getTime()) return { muted: true, muted_until: null }
  return { muted: true, muted_until: mutedUntil.toISOString() }
}

/** The effective retention: the conversation's own days, else the server default, else none. */
export interface RetentionView {
  days: number | null
  source: 'conversation' | 'server' | 'none'
}

export const retentionView = (own: number | null, serverDays: number | null): RetentionView =>
  own !== null
    ? { days: own, source: 'conversation' }
    : serverDays !== null
      ? { days: serverDays, source: 'server' }
      : { days: null, source: 'none' }

export const baseConversationView = (c: ConversationRow) => ({
  id: c.id,
  kind: c.kind,
  title: c.title,
  created_by: c.createdBy,
  last_seq: c.lastSeq,
  change_seq: c.changeSeq,
  last_activity_at: c.lastActivityAt.toISOString(),
  created_at: c.createdAt.toISOString(),
  blocked: c.blocked,
})
