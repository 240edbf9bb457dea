import type { Db } from '../store/db.js'
import * as members from '../store/members.js'
import { lastMessages } from '../store/messages.js'
import { unreadCounts } from '../store/reads.js'
import { unreadMentionCounts } from '../store/rich-pages.js'
import type { ConversationRow } from '../store/schema.js'
import {
  baseConversationView,
  type ConversationView,
  type MemberView,
  muteFields,
  retentionView,
  richView,
} from './views.js'

/** Members, last message, unread and unread-mention counts for a page of conversations, in four queries. */
export async function conversationViews(
  db: Db,
  me: string,
  rows: ConversationRow[],
  defaultRetentionDays: number | null,
): Promise<ConversationView[]> {
  if (rows.length === 0) return []
  const ids = rows.map((r) => r.id)
  const [all, last, unread, mentioned] = await Promise.all([
    members.membersOf(db, ids),
    lastMessages(db, me, rows),
    unreadCounts(db, me, ids),
    unreadMentionCounts(db, me, ids),
  ])
  const lastBy = new Map(last.map((m) => [m.conversationId, richView(m)]))
  const now = new Date()
  return rows.map((r) => {
    const inIt = all.filter((m) => m.conversationId === r.id)
    return {
      ...baseConversationView(r),
      members: inIt.map(toMemberView),
      last_message: lastBy.get(r.id) ?? null,
      unread_count: unread.get(r.id) ?? 0,
      unread_mentions: mentioned.get(r.id) ?? 0,
      retention: retentionView(r.retentionDays, defaultRetentionDays),
      ...muteFields(inIt.find((m) => m.userId === me)?.mutedUntil ?? null, now),
    }
  })
}

export const toMemberView = (m: members.MemberWithName): MemberView => ({
  user_id: m.userId,
  full_name: m.fullName,
  role: m.role,
  last_read_seq: m.lastReadSeq,
})
