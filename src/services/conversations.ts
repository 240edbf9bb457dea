import { BannedError, BlockedError, ForbiddenError, invalid, NotFoundError } from '../errors.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import { isUuid, newId } from '../lib/ids.js'
import * as bans from '../store/bans.js'
import * as blocks from '../store/blocks.js'
import * as convs from '../store/conversations.js'
import type { Db } from '../store/db.js'
import * as members from '../store/members.js'
import { primaryReads, type Reads } from '../store/read-replica.js'
import type { ConversationRow, MemberRow } from '../store/schema.js'
import { activeUserIds } from '../store/users.js'
import { conversationViews, toMemberView } from './conversation-views.js'
import { Outbox } from './outbox.js'
import type { Broker } from './ports.js'
import { removedEvent, removeLocked } from './removal.js'
import { cleanText } from './text.js'
import {
  type ConversationView,
  type MemberView,
  MUTE_UNTIL_MAX,
  MUTED_FOREVER,
  type MuteView,
  muteFields,
} from './views.js'

const TITLE_MAX = 200

export interface ConversationLimits {
  groupMaxMembers: number
  /** MESSAGE_RETENTION_DAYS, shown in views where a conversation has no retention of its own. */
  retentionDays?: number | null | undefined
}

/** Conversations, membership and roles. Every read and write checks membership; a non-member gets 404. */
export class ConversationService {
  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
    private readonly limits: ConversationLimits,
    /** Conversation lists: a replica when one is configured (it serves only fresh reads). */
    private readonly reads: Reads = primaryReads(db),
    /** `conversation.created`, `member.added` and `member.removed` go out through it. */
    private readonly outbox: Outbox = new Outbox([]),
  ) {}

  /** The caller's membership, or 404 whether the conversation is unknown or the caller is not in it. */
  async requireMember(userId: string, conversationId: string, db: Db = this.db): Promise<MemberRow> {
    const row = isUuid(conversationId) ? await members.findMember(db, conversationId, userId) : undefined
    if (!row) throw new NotFoundError('conversation')
    return row
  }

  /**
   * Create-or-get; the unique `direct_key` makes concurrent creates from both sides meet on one row.
   * An existing conversation is returned even when a block closed it (it stays readable); a new
   * one is refused (403 `blocked`) while either user blocks the other, checked under the pair's
   * lock so a block committing meanwhile cannot be missed.
   */
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
    const created = await this.insertConversation(
      { id, kind: 'direct', directKey, createdBy: me },
      [
        { userId: me, role: 'member' },
        { userId: recipientId, role: 'member' },
      ],
      async (tx) => {
        await blocks.lockPair(tx, directKey)
        if (await blocks.pairBlocked(tx, me, recipientId)) throw blockedDirect()
      },
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
    await this.refuseBlockers(me, others)
    const id = newId()
    await this.insertConversation({ id, kind: 'group', title, createdBy: me }, [
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
    await this.refuseBlockers(me, [userId])
    const result = await this.db.transaction(async (tx) => {
      // Under the conversation lock, so `seq` says exactly which messages the new member may see.
      const { seq } = await convs.lockConversation(tx, conversationId)
      if (await bans.isBanned(tx, conversationId, userId)) throw new BannedError()
      const count = await members.countMembers(tx, conversationId)
      const inserted = await members.insertMembers(tx, conversationId, [
        { userId, role: 'member', joinedSeq: seq },
      ])
      if (inserted.length > 0 && count + 1 > this.limits.groupMaxMembers) {
        throw invalid('user_id', `a group holds at most ${this.limits.groupMaxMembers} members`)
      }
      if (inserted.length > 0) {
        await this.outbox.record(tx, [
          {
            type: 'member.added',
            conversationId,
            data: { conversation_id: conversationId, user_id: userId, role: 'member', added_by: me, seq },
          },
        ])
      }
      return { seq, added: inserted.length > 0 }
    })
    if (result.added) this.outbox.committed()
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
      if (!(await removeLocked(tx, conversationId, userId, me !== userId, at)))
        throw new NotFoundError('member')
      await this.recordRemoval(tx, conversationId, userId, me, at)
      return at
    })
    this.outbox.committed()
    this.broker.publish(removedEvent(conversationId, userId, removal))
  }

  /**
   * Mutes the conversation for the caller: no push notifications until `until` (a future time;
   * undefined: until unmuted), mentions of the caller excepted. Members only (404 otherwise).
   */
  async mute(
    me: string,
    conversationId: string,
    until: Date | undefined,
    now = new Date(),
  ): Promise<MuteView> {
    if (until !== undefined && until <= now) throw invalid('until', 'must be in the future')
    if (until !== undefined && until >= MUTE_UNTIL_MAX)
      throw invalid('until', 'must be before 9999-01-01; leave it out to mute until unmuted')
    return this.setMute(me, conversationId, until ?? MUTED_FOREVER, now)
  }

  /** Ends the caller's mute (idempotent). Members only (404 otherwise). */
  unmute(me: string, conversationId: string): Promise<MuteView> {
    return this.setMute(me, conversationId, null, new Date())
  }

  private async setMute(
    me: string,
    conversationId: string,
    until: Date | null,
    now: Date,
  ): Promise<MuteView> {
    await this.requireMember(me, conversationId)
    const row = await members.setMutedUntil(this.db, conversationId, me, until)
    // Removed between the check and the update: as for any non-member.
    if (!row) throw new NotFoundError('conversation')
    return { conversation_id: conversationId, ...muteFields(row.mutedUntil, now) }
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

  /** Inserts it with its members and records `conversation.created` in the same transaction. */
  /** The `member.removed` outbox event, in the removal's transaction (bans use it too). */
  async recordRemoval(tx: Db, conversationId: string, userId: string, by: string, at: convs.Position) {
    const data = { conversation_id: conversationId, user_id: userId, removed_by: by, seq: at.seq }
    await this.outbox.record(tx, [{ type: 'member.removed', conversationId, data }])
  }

  /** Call after a transaction that recorded outbox events commits (wakes the local worker). */
  outboxCommitted(): void {
    this.outbox.committed()
  }

  private async insertConversation(
    row: { id: string; kind: 'direct' | 'group'; title?: string; directKey?: string; createdBy: string },
    initial: { userId: string; role: members.Role }[],
    guard?: (tx: Db) => Promise<void>,
  ): Promise<boolean> {
    if (!this.outbox.wants('conversation.created'))
      return convs.insertConversation(this.db, row, initial, guard)
    const created = await this.db.transaction(async (tx) => {
      const inserted = await convs.insertConversation(tx, row, initial, guard)
      if (inserted) {
        const data = {
          conversation_id: row.id,
          kind: row.kind,
          title: row.title ?? null,
          created_by: row.createdBy,
          member_ids: initial.map((m) => m.userId),
        }
        await this.outbox.record(tx, [{ type: 'conversation.created', conversationId: row.id, data }])
      }
      return inserted
    })
    if (created) this.outbox.committed()
    return created
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

  /**
   * Someone who blocks `me` cannot be put in a group by `me`. The refusal names nobody, so a
   * list of ids cannot be used to find out who blocks the caller faster than one by one.
   */
  private async refuseBlockers(me: string, ids: string[]): Promise<void> {
    if ((await blocks.blockersAmong(this.db, me, ids)).size > 0) {
      throw new BlockedError('a user you named blocks you and cannot be added by you')
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

  private views(me: string, rows: ConversationRow[], db: Db = this.db): Promise<ConversationView[]> {
    return conversationViews(db, me, rows, this.limits.retentionDays ?? null)
  }
}

const blockedDirect = () =>
  new BlockedError('one of you blocks the other: a direct conversation cannot be started')

export function requireAdmin(member: MemberRow): void {
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
