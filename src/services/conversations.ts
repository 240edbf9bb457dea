import { and, asc, desc, eq, inArray, isNull, lt, ne, or, sql } from 'drizzle-orm'
import type { Broker } from '../broker/broker.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import { isUuid, newId } from '../lib/ids.js'
import type { Db } from '../store/db.js'
import { isUniqueViolation } from '../store/pg-errors.js'
import {
  type ConversationRow,
  conversationMembers,
  conversations,
  type MemberRow,
  messages,
  users,
} from '../store/schema.js'
import { ForbiddenError, NotFoundError, ValidationError } from './errors.js'
import { cleanText } from './text.js'
import { baseConversationView, type ConversationView, type MemberView, toMessageView } from './views.js'

type Role = MemberRow['role']
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
  ) {}

  /** The caller's membership, or 404 whether the conversation is unknown or the caller is not in it. */
  async requireMember(userId: string, conversationId: string, db: Db = this.db): Promise<MemberRow> {
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    const [row] = await db
      .select()
      .from(conversationMembers)
      .where(
        and(eq(conversationMembers.conversationId, conversationId), eq(conversationMembers.userId, userId)),
      )
    if (!row) throw new NotFoundError('conversation')
    return row
  }

  /** Create-or-get; the unique `direct_key` makes concurrent creates from both sides meet on one row. */
  async openDirect(
    me: string,
    recipientId: string,
  ): Promise<{ conversation: ConversationView; created: boolean }> {
    if (recipientId === me) {
      throw new ValidationError([
        { path: '/body/recipient_id', message: 'cannot open a conversation with yourself' },
      ])
    }
    await this.requireActiveUsers([recipientId], '/body/recipient_id')
    const directKey = [me, recipientId].sort().join(':')
    const existing = await this.findDirect(directKey)
    if (existing) return { conversation: await this.view(me, existing), created: false }
    const id = newId()
    try {
      await this.db.transaction(async (tx) => {
        await tx.insert(conversations).values({ id, kind: 'direct', directKey, createdBy: me })
        await tx.insert(conversationMembers).values([
          { conversationId: id, userId: me, role: 'member' },
          { conversationId: id, userId: recipientId, role: 'member' },
        ])
      })
    } catch (err) {
      if (!isUniqueViolation(err)) throw err
      const winner = await this.findDirect(directKey)
      if (!winner) throw err
      return { conversation: await this.view(me, winner), created: false }
    }
    this.broker.publish({ type: 'conversation.created', conversation_id: id, member_ids: [me, recipientId] })
    return { conversation: await this.view(me, await this.row(id)), created: true }
  }

  async createGroup(me: string, titleInput: string, memberIds: string[]): Promise<ConversationView> {
    const title = cleanText(titleInput, '/body/title', TITLE_MAX)
    const others = [...new Set(memberIds)].filter((id) => id !== me)
    if (others.length + 1 > this.limits.groupMaxMembers) {
      throw new ValidationError([
        { path: '/body/member_ids', message: `a group holds at most ${this.limits.groupMaxMembers} members` },
      ])
    }
    await this.requireActiveUsers(others, '/body/member_ids')
    const id = newId()
    await this.db.transaction(async (tx) => {
      await tx.insert(conversations).values({ id, kind: 'group', title, createdBy: me })
      await tx
        .insert(conversationMembers)
        .values([
          { conversationId: id, userId: me, role: 'owner' as Role },
          ...others.map((userId) => ({ conversationId: id, userId, role: 'member' as Role })),
        ])
    })
    this.broker.publish({ type: 'conversation.created', conversation_id: id, member_ids: [me, ...others] })
    return this.view(me, await this.row(id))
  }

  async rename(me: string, conversationId: string, titleInput: string): Promise<ConversationView> {
    const member = await this.requireMember(me, conversationId)
    const row = await this.row(conversationId)
    if (row.kind !== 'group')
      throw new ValidationError([{ path: '/body/title', message: 'only a group has a title' }])
    requireAdmin(member)
    const title = cleanText(titleInput, '/body/title', TITLE_MAX)
    await this.db
      .update(conversations)
      .set({ title, updatedAt: new Date() })
      .where(eq(conversations.id, conversationId))
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
    if (conv.kind !== 'group')
      throw new ValidationError([
        { path: '/body/user_id', message: 'a direct conversation has exactly two members' },
      ])
    requireAdmin(actor)
    await this.requireActiveUsers([userId], '/body/user_id')
    const result = await this.db.transaction(async (tx) => {
      // Locking the conversation row orders this change against concurrent sends, so `seq`
      // says exactly which messages the new member may see.
      const { seq } = await lockConversation(tx, conversationId)
      const [{ count } = { count: 0 }] = await tx
        .select({ count: sql<number>`count(*)::int` })
        .from(conversationMembers)
        .where(eq(conversationMembers.conversationId, conversationId))
      const inserted = await tx
        .insert(conversationMembers)
        .values({ conversationId, userId, role: 'member' })
        .onConflictDoNothing()
        .returning()
      if (inserted.length > 0 && count + 1 > this.limits.groupMaxMembers) {
        throw new ValidationError([
          { path: '/body/user_id', message: `a group holds at most ${this.limits.groupMaxMembers} members` },
        ])
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
    if (conv.kind !== 'group')
      throw new ValidationError([{ path: '/body/role', message: 'a direct conversation has no roles' }])
    if (actor.role !== 'owner') throw new ForbiddenError('only the owner may change roles')
    const [updated] = await this.db
      .update(conversationMembers)
      .set({ role })
      .where(
        and(
          eq(conversationMembers.conversationId, conversationId),
          eq(conversationMembers.userId, userId),
          ne(conversationMembers.role, 'owner'),
        ),
      )
      .returning()
    if (!updated) {
      if (userId === me)
        throw new ValidationError([
          { path: '/params/user_id', message: "the owner's role cannot be changed" },
        ])
      throw new NotFoundError('member')
    }
    this.broker.publish({ type: 'member.updated', conversation_id: conversationId, user_id: userId, role })
    return this.memberView(conversationId, userId)
  }

  /** Admins remove anyone but the owner; anyone may remove themselves (leave). An owner who leaves hands ownership on. */
  async removeMember(me: string, conversationId: string, userId: string): Promise<void> {
    const actor = await this.requireMember(me, conversationId)
    const conv = await this.row(conversationId)
    if (conv.kind !== 'group')
      throw new ValidationError([{ path: '/params/user_id', message: 'cannot leave a direct conversation' }])
    if (me !== userId) requireAdmin(actor)
    const removal = await this.db.transaction(async (tx) => {
      const removal = await lockConversation(tx, conversationId, { removal: true })
      const [target] = await tx
        .delete(conversationMembers)
        .where(
          and(eq(conversationMembers.conversationId, conversationId), eq(conversationMembers.userId, userId)),
        )
        .returning()
      if (!target) throw new NotFoundError('member')
      if (target.role === 'owner' && me !== userId) throw new ForbiddenError('the owner cannot be removed')
      if (target.role === 'owner') await handOwnershipOn(tx, conversationId)
      return removal
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
    const rows = await this.db
      .select({ c: conversations })
      .from(conversationMembers)
      .innerJoin(conversations, eq(conversations.id, conversationMembers.conversationId))
      .where(
        and(
          eq(conversationMembers.userId, me),
          after &&
            or(
              lt(conversations.lastActivityAt, after.at),
              and(eq(conversations.lastActivityAt, after.at), lt(conversations.id, after.id)),
            ),
        ),
      )
      .orderBy(desc(conversations.lastActivityAt), desc(conversations.id))
      .limit(limit + 1)
    const page = rows.slice(0, limit).map((r) => r.c)
    const items = await this.views(me, page)
    const last = page.at(-1)
    return {
      items,
      next_cursor:
        rows.length > limit && last
          ? encodeCursor({ at: last.lastActivityAt.toISOString(), id: last.id })
          : null,
    }
  }

  /** Ids of the conversations a user is in: what a user socket subscribes to. */
  async memberships(
    userId: string,
  ): Promise<{ conversationId: string; lastSeq: number; membersVersion: number }[]> {
    return this.db
      .select({
        conversationId: conversations.id,
        lastSeq: conversations.lastSeq,
        membersVersion: conversations.membersVersion,
      })
      .from(conversationMembers)
      .innerJoin(conversations, eq(conversations.id, conversationMembers.conversationId))
      .where(eq(conversationMembers.userId, userId))
  }

  /** Distinct people sharing a conversation with the user (or the one given), at most `cap`. */
  async peers(userId: string, conversationId?: string, cap = 5000): Promise<string[]> {
    const mine = this.db
      .select({ id: conversationMembers.conversationId })
      .from(conversationMembers)
      .where(eq(conversationMembers.userId, userId))
    const rows = await this.db
      .selectDistinct({ id: conversationMembers.userId })
      .from(conversationMembers)
      .where(
        and(
          conversationId
            ? eq(conversationMembers.conversationId, conversationId)
            : inArray(conversationMembers.conversationId, mine),
          ne(conversationMembers.userId, userId),
        ),
      )
      .limit(cap)
    return rows.map((r) => r.id)
  }

  /** Where a socket starts following a conversation: its last seq and membership version. */
  async position(conversationId: string): Promise<{ lastSeq: number; membersVersion: number }> {
    const [row] = await this.db
      .select({ lastSeq: conversations.lastSeq, membersVersion: conversations.membersVersion })
      .from(conversations)
      .where(eq(conversations.id, conversationId))
    return row ?? { lastSeq: 0, membersVersion: 0 }
  }

  private async row(id: string): Promise<ConversationRow> {
    const [row] = await this.db.select().from(conversations).where(eq(conversations.id, id))
    if (!row) throw new NotFoundError('conversation')
    return row
  }

  private async findDirect(directKey: string): Promise<ConversationRow | undefined> {
    const [row] = await this.db.select().from(conversations).where(eq(conversations.directKey, directKey))
    return row
  }

  private async requireActiveUsers(ids: string[], path: string): Promise<void> {
    if (ids.length === 0) return
    const bad = ids.filter((id) => !isUuid(id))
    if (bad.length > 0) throw new NotFoundError('user')
    const found = await this.db
      .select({ id: users.id })
      .from(users)
      .where(and(inArray(users.id, ids), eq(users.isActive, true), isNull(users.deletedAt)))
    if (found.length !== new Set(ids).size) {
      const known = new Set(found.map((r) => r.id))
      const missing = ids.filter((id) => !known.has(id))
      throw Object.assign(new NotFoundError('user'), {
        message: `unknown user(s) in ${path}: ${missing.join(', ')}`,
      })
    }
  }

  private async memberView(conversationId: string, userId: string): Promise<MemberView> {
    const [row] = await this.db
      .select({ m: conversationMembers, name: users.fullName })
      .from(conversationMembers)
      .innerJoin(users, eq(users.id, conversationMembers.userId))
      .where(
        and(eq(conversationMembers.conversationId, conversationId), eq(conversationMembers.userId, userId)),
      )
    if (!row) throw new NotFoundError('member')
    return { user_id: userId, full_name: row.name, role: row.m.role, last_read_seq: row.m.lastReadSeq }
  }

  private async view(me: string, row: ConversationRow): Promise<ConversationView> {
    const [view] = await this.views(me, [row])
    return view as ConversationView
  }

  /** Members, last message and unread count for a page of conversations, in three queries. */
  private async views(me: string, rows: ConversationRow[]): Promise<ConversationView[]> {
    if (rows.length === 0) return []
    const ids = rows.map((r) => r.id)
    const members = await this.db
      .select({ m: conversationMembers, name: users.fullName })
      .from(conversationMembers)
      .innerJoin(users, eq(users.id, conversationMembers.userId))
      .where(inArray(conversationMembers.conversationId, ids))
      .orderBy(asc(conversationMembers.joinedAt), asc(conversationMembers.userId))
    const lastMessages = await this.db
      .select()
      .from(messages)
      .where(
        or(
          ...rows
            .filter((r) => r.lastSeq > 0)
            .map((r) => and(eq(messages.conversationId, r.id), eq(messages.seq, r.lastSeq))),
        ) ?? sql`false`,
      )
    const myRead = new Map(
      members.filter((m) => m.m.userId === me).map((m) => [m.m.conversationId, m.m.lastReadSeq]),
    )
    const unread = await this.db
      .select({ id: messages.conversationId, n: sql<number>`count(*)::int` })
      .from(messages)
      .innerJoin(
        conversationMembers,
        and(
          eq(conversationMembers.conversationId, messages.conversationId),
          eq(conversationMembers.userId, me),
        ),
      )
      .where(
        and(
          inArray(messages.conversationId, ids),
          sql`${messages.seq} > ${conversationMembers.lastReadSeq}`,
          or(isNull(messages.senderId), ne(messages.senderId, me)),
          isNull(messages.deletedAt),
        ),
      )
      .groupBy(messages.conversationId)
    const unreadBy = new Map(unread.map((u) => [u.id, u.n]))
    const lastBy = new Map(lastMessages.map((m) => [m.conversationId, toMessageView(m)]))
    return rows.map((r) => ({
      ...baseConversationView(r),
      members: members
        .filter((m) => m.m.conversationId === r.id)
        .map((m) => ({
          user_id: m.m.userId,
          full_name: m.name,
          role: m.m.role,
          last_read_seq: m.m.lastReadSeq,
        })),
      last_message: lastBy.get(r.id) ?? null,
      unread_count: myRead.has(r.id) ? (unreadBy.get(r.id) ?? 0) : 0,
    }))
  }
}

function requireAdmin(member: MemberRow): void {
  if (member.role !== 'owner' && member.role !== 'admin')
    throw new ForbiddenError('only a group admin may do this')
}

/**
 * Takes the conversation's row lock for the rest of the transaction, which orders this change
 * against sends, and returns its last seq and membership version. A removal bumps the version
 * (see `conversations.membersVersion`).
 */
async function lockConversation(
  tx: Db,
  conversationId: string,
  opts: { removal?: boolean } = {},
): Promise<{ seq: number; membersVersion: number }> {
  const [row] = await tx
    .update(conversations)
    .set({
      updatedAt: new Date(),
      ...(opts.removal ? { membersVersion: sql`${conversations.membersVersion} + 1` } : {}),
    })
    .where(eq(conversations.id, conversationId))
    .returning({ seq: conversations.lastSeq, membersVersion: conversations.membersVersion })
  if (!row) throw new NotFoundError('conversation')
  return row
}

/** The longest-serving admin becomes owner, else the longest-serving member. */
async function handOwnershipOn(tx: Db, conversationId: string): Promise<void> {
  const [heir] = await tx
    .select()
    .from(conversationMembers)
    .where(eq(conversationMembers.conversationId, conversationId))
    .orderBy(
      sql`case when ${conversationMembers.role} = 'admin' then 0 else 1 end`,
      asc(conversationMembers.joinedAt),
      // Members added together share joined_at; the id makes the choice deterministic.
      asc(conversationMembers.userId),
    )
    .limit(1)
  if (!heir) return
  await tx
    .update(conversationMembers)
    .set({ role: 'owner' })
    .where(
      and(
        eq(conversationMembers.conversationId, conversationId),
        eq(conversationMembers.userId, heir.userId),
      ),
    )
}

function decodeActivityCursor(cursor: string): { at: Date; id: string } {
  const c = decodeCursor(cursor, '/querystring/cursor')
  const at = new Date(String(c.at))
  if (Number.isNaN(at.getTime()) || typeof c.id !== 'string' || !isUuid(c.id)) {
    throw new ValidationError([{ path: '/querystring/cursor', message: 'is not a valid cursor' }])
  }
  return { at, id: c.id }
}
