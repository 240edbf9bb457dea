import { ForbiddenError, invalid, NotFoundError } from '../errors.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import { isUuid, newId } from '../lib/ids.js'
import * as convs from '../store/conversations.js'
import type { Db } from '../store/db.js'
import * as members from '../store/members.js'
import { lastMessages } from '../store/messages.js'
import { primaryReads, type Reads } from '../store/read-replica.js'
import { unreadCounts } from '../store/reads.js'
import { unreadMentionCounts } from '../store/rich-pages.js'
import type { ConversationRow, MemberRow } from '../store/schema.js'
import { activeUserIds } from '../store/users.js'
import type { Broker } from './ports.js'
import { cleanText } from './text.js'
import { baseConversationView, type ConversationView, type MemberView, richView } from './views.js'

const TITLE_MAX = 200

export interface ConversationLimits {
  groupMaxMembers: number
}

/** Conversations, membership and roles. Every read and write checks membership; a non-member gets 404. */
export class ConversationService {
  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
    private readonly limits: ConversationLimits,
    /** Conversation lists: a replica when one is configured (it serves only fresh reads). */
    private readonly reads: Reads = primaryReads(db),
  ) {}

  /** The caller's membership, or 404 whether the conversation is unknown or the caller is not in it. */
  async requireMember(userId: string, conversationId: string, db: Db = this.db): Promise<MemberRow> {
    const row = isUuid(conversationId) ? await members.findMember(db, conversationId, userId) : undefined
    if (!row) throw new NotFoundError('conversation')
    return row
  }

  /** Create-or-get; the unique `direct_key` makes concurrent creates from both sides meet on one row. */
  async openDirect(
    me: string,
    recipientId: string,
  ): Promise<{ conversation: ConversationView; created: boolean }> {
    if (recipientId === me) throw invalid('recipient_id', 'cannot open a conversation with yourself')
    await this.requireActiveUsers([recipientId], 'recipient_id')
    const directKey = [me, recipientId].sort().join(':')
    const existing = await convs.findDirect(this.db, directKey)
    if (existing) return { conversation: await this.view(me, existing), created: false }
    const id = newId()
    const created = await convs.insertConversation(
      this.db,
      { id, kind: 'direct', directKey, createdBy: me },
      [
        { userId: me, role: 'member' },
        { userId: recipientId, role: 'member' },
      ],
    )
    if (!created) {
      const winner = await convs.findDirect(this.db, directKey)
      if (!winner) throw new NotFoundError('conversation')
      return { conversation: await this.view(me, winner), created: false }
    }
    this.broker.publish({ type: 'conversation.created', conversation_id: id, member_ids: [me, recipientId] })
    return { conversation: await this.view(me, await this.row(id)), created: true }
  }

  async createGroup(me: string, titleInput: string, memberIds: string[]): Promise<ConversationView> {
    const title = cleanText(titleInput, 'title', TITLE_MAX)
    const others = [...new Set(memberIds)].filter((id) => id !== me)
    if (others.length + 1 > this.limits.groupMaxMembers) {
      throw invalid('member_ids', `a group holds at most ${this.limits.groupMaxMembers} members`)
    }
    await this.requireActiveUsers(others, 'member_ids')
    const id = newId()
    await convs.insertConversation(this.db, { id, kind: 'group', title, createdBy: me }, [
      { userId: me, role: 'owner' },
      ...others.map((userId) => ({ userId, role: 'member' as const })),
    ])
    this.broker.publish({ type: 'conversation.created', conversation_id: id, member_ids: [me, ...others] })
    return this.view(me, await this.row(id))
  }

  async rename(me: string, conversationId: string, titleInput: string): Promise<ConversationView> {
    const member = await this.requireMember(me, conversationId)
    const row = await this.row(conversationId)
    if (row.kind !== 'group') throw invalid('title', 'only a group has a title')
    requireAdmin(member)
    const title = cleanText(titleInput, 'title', TITLE_MAX)
    await convs.setTitle(this.db, conversationId, title)
    this.broker.publish({ type: 'conversation.updated', conversation_id: conversationId, title })
    return this.view(me, await this.row(conversationId))
  }

  /** Admins only. Adding someone who is already a member changes nothing (`added: false`). */
  async addMember(
    me: string,
    conversationId: string,
    userId: string,
  ): Promise<{ member: MemberView; added: boolean }> {
    const actor = await this.requireMember(me, conversationId)
    const conv = await this.row(conversationId)
    if (conv.kind !== 'group') throw invalid('user_id', 'a direct conversation has exactly two members')
    requireAdmin(actor)
    await this.requireActiveUsers([userId], 'user_id')
    const result = await this.db.transaction(async (tx) => {
      // Under the conversation lock, so `seq` says exactly which messages the new member may see.
      const { seq } = await convs.lockConversation(tx, conversationId)
      const count = await members.countMembers(tx, conversationId)
      const inserted = await members.insertMembers(tx, conversationId, [
        { userId, role: 'member', joinedSeq: seq },
      ])
      if (inserted.length > 0 && count + 1 > this.limits.groupMaxMembers) {
        throw invalid('user_id', `a group holds at most ${this.limits.groupMaxMembers} members`)
      }
      return { seq, added: inserted.length > 0 }
    })
    if (result.added) {
      this.broker.publish({
        type: 'member.added',
        conversation_id: conversationId,
        user_id: userId,
        role: 'member',
        seq: result.seq,
      })
    }
    return { member: await this.memberView(conversationId, userId), added: result.added }
  }

  /**
   * The owner makes a member an admin or an admin a member. Ownership moves only when the owner
   * leaves; the owner's own role cannot be changed here.
   */
  async setRole(
    me: string,
    conversationId: string,
    userId: string,
    role: 'admin' | 'member',
  ): Promise<MemberView> {
    const actor = await this.requireMember(me, conversationId)
    const conv = await this.row(conversationId)
    if (conv.kind !== 'group') throw invalid('role', 'a direct conversation has no roles')
    if (actor.role !== 'owner') throw new ForbiddenError('only the owner may change roles')
    const updated = await members.setMemberRole(this.db, conversationId, userId, role)
    if (!updated) {
      if (userId === me) throw invalid('user_id', "the owner's role cannot be changed")
      throw new NotFoundError('member')
    }
    this.broker.publish({ type: 'member.updated', conversation_id: conversationId, user_id: userId, role })
    return this.memberView(conversationId, userId)
  }

  /** Admins remove anyone but the owner; anyone may remove themselves (leave). An owner who leaves hands ownership on. */
  async removeMember(me: string, conversationId: string, userId: string): Promise<void> {
    const actor = await this.requireMember(me, conversationId)
    const conv = await this.row(conversationId)
    if (conv.kind !== 'group') throw invalid('user_id', 'cannot leave a direct conversation')
    if (me !== userId) requireAdmin(actor)
    const removal = await this.db.transaction(async (tx) => {
      const at = await convs.lockConversation(tx, conversationId, { removal: true })
      const target = await members.deleteMember(tx, conversationId, userId)
      if (!target) throw new NotFoundError('member')
      if (target.role === 'owner' && me !== userId) throw new ForbiddenError('the owner cannot be removed')
      if (target.role === 'owner') await members.handOwnershipOn(tx, conversationId)
      await members.recordDeparture(tx, conversationId, userId, at)
      return at
    })
    this.broker.publish({
      type: 'member.removed',
      conversation_id: conversationId,
      user_id: userId,
      seq: removal.seq,
      members_version: removal.membersVersion,
    })
  }

  async get(me: string, conversationId: string): Promise<ConversationView> {
    await this.requireMember(me, conversationId)
    return this.view(me, await this.row(conversationId))
  }

  /** The caller's conversations, most recent activity first; the cursor is (activity, id) of the last one. */
  async list(me: string, limit: number, cursor: string | undefined) {
    const after = cursor === undefined ? undefined : decodeActivityCursor(cursor)
    const { rows, items } = await this.reads.fresh('conversations', async (db) => {
      const rows = await convs.conversationsOf(db, me, after, limit + 1)
      return { rows, items: await this.views(me, rows.slice(0, limit), db) }
    })
    const last = rows.slice(0, limit).at(-1)
    return {
      items,
      next_cursor:
        rows.length > limit && last
          ? encodeCursor({ at: last.lastActivityAt.toISOString(), id: last.id })
          : null,
    }
  }

  /** The conversations a user is in and where each stands: what a user socket follows. */
  memberships(userId: string) {
    return convs.memberships(this.db, userId)
  }

  /** Distinct people sharing a conversation with the user (or in the one given), at most `cap`. */
  peers(userId: string, conversationId?: string, cap = 5000): Promise<string[]> {
    return members.peersOf(this.db, userId, conversationId, cap)
  }

  /** Where a removed member stopped: a socket delivers up to there, then stops (undefined: never removed). */
  departure(userId: string, conversationId: string): Promise<members.Departure | undefined> {
    return members.findDeparture(this.db, conversationId, userId)
  }

  /** Where a socket starts following a conversation: its last seq and membership version. */
  position(conversationId: string): Promise<convs.Position> {
    return convs.position(this.db, conversationId)
  }

  private async row(id: string): Promise<ConversationRow> {
    const row = await convs.findConversation(this.db, id)
    if (!row) throw new NotFoundError('conversation')
    return row
  }

  private async requireActiveUsers(ids: string[], field: string): Promise<void> {
    if (ids.length === 0) return
    if (ids.some((id) => !isUuid(id))) throw new NotFoundError('user')
    const known = await activeUserIds(this.db, ids)
    const missing = [...new Set(ids)].filter((id) => !known.has(id))
    if (missing.length > 0) {
      throw Object.assign(new NotFoundError('user'), {
        message: `unknown user(s) in ${field}: ${missing.join(', ')}`,
      })
    }
  }

  private async memberView(conversationId: string, userId: string): Promise<MemberView> {
    const [row] = await members.membersOf(this.db, [conversationId], userId)
    if (!row) throw new NotFoundError('member')
    return toMemberView(row)
  }

  private async view(me: string, row: ConversationRow): Promise<ConversationView> {
    const [view] = await this.views(me, [row])
    return view as ConversationView
  }

  /** Members, last message, unread and unread-mention counts for a page of conversations, in four queries. */
  private async views(me: string, rows: ConversationRow[], db: Db = this.db): Promise<ConversationView[]> {
    if (rows.length === 0) return []
    const ids = rows.map((r) => r.id)
    const [all, last, unread, mentioned] = await Promise.all([
      members.membersOf(db, ids),
      lastMessages(db, me, rows),
      unreadCounts(db, me, ids),
      unreadMentionCounts(db, me, ids),
    ])
    const lastBy = new Map(last.map((m) => [m.conversationId, richView(m)]))
    return rows.map((r) => ({
      ...baseConversationView(r),
      members: all.filter((m) => m.conversationId === r.id).map(toMemberView),
      last_message: lastBy.get(r.id) ?? null,
      unread_count: unread.get(r.id) ?? 0,
      unread_mentions: mentioned.get(r.id) ?? 0,
    }))
  }
}

const toMemberView = (m: members.MemberWithName): MemberView => ({
  user_id: m.userId,
  full_name: m.fullName,
  role: m.role,
  last_read_seq: m.lastReadSeq,
})

function requireAdmin(member: MemberRow): void {
  if (member.role !== 'owner' && member.role !== 'admin')
    throw new ForbiddenError('only a group admin may do this')
}

function decodeActivityCursor(cursor: string): { at: Date; id: string } {
  const c = decodeCursor(cursor)
  const at = new Date(String(c.at))
  if (Number.isNaN(at.getTime()) || typeof c.id !== 'string' || !isUuid(c.id)) {
    throw invalid('cursor', 'is not a valid cursor')
  }
  return { at, id: c.id }
}
