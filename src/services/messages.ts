import { and, asc, desc, eq, gt, lt, type SQL, sql } from 'drizzle-orm'
import type { Broker } from '../broker/broker.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import { isUuid } from '../lib/ids.js'
import type { Db } from '../store/db.js'
import { conversationMembers, conversations, type MessageRow, messages } from '../store/schema.js'
import type { ConversationService } from './conversations.js'
import { ConflictError, ForbiddenError, NotFoundError, RateLimitedError, ValidationError } from './errors.js'
import { MessageWriter } from './message-writer.js'
import type { SendRate } from './send-rate.js'
import { cleanText } from './text.js'
import { type MessageView, toMessageView } from './views.js'

export interface HistoryQuery {
  before_seq?: number | undefined
  after_seq?: number | undefined
  skip?: number | undefined
  limit?: number | undefined
  cursor?: string | undefined
}

export interface HistoryPage {
  items: MessageView[]
  /** Pass as `cursor` to get the next page in the same direction; null at the end. */
  next_cursor: string | null
  /** Convenience for keyset clients: the seq bounds to use for the next page. */
  next_before_seq: number | null
  next_after_seq: number | null
}

export interface MessageLimits {
  maxChars: number
  batchMax: number
  /** The per-user send bucket; undefined when RATE_LIMITS=off. */
  sendRate?: SendRate | undefined
}

export const HISTORY_DEFAULT_LIMIT = 50
export const HISTORY_MAX_LIMIT = 100

/**
 * Sending, editing, deleting, reading and paging messages. REST and WebSocket both call these,
 * so every message takes one path: validate, store (group commit), then publish.
 */
export class MessageService {
  private readonly writer: MessageWriter

  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
    private readonly conversations: ConversationService,
    private readonly limits: MessageLimits,
  ) {
    this.writer = new MessageWriter(db, limits.batchMax, (created, membersVersion) => {
      for (const m of created) {
        this.broker.publish({
          type: 'message.created',
          conversation_id: m.conversationId,
          message: toMessageView(m),
          members_version: membersVersion.get(m.conversationId) ?? 0,
        })
      }
    })
  }

  /**
   * Stores a message and publishes it after commit. With a `clientMsgId` already used by this
   * sender in this conversation, returns the first message (`created: false`) and publishes nothing.
   */
  async send(
    senderId: string,
    conversationId: string,
    content: string,
    clientMsgId: string | null = null,
  ): Promise<{ message: MessageView; created: boolean }> {
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    // Here, on the one path every message takes, so no door (REST or socket) gets around it.
    if (this.limits.sendRate && !(await this.limits.sendRate.take(senderId))) throw new RateLimitedError(1)
    const text = cleanText(content, '/body/content', this.limits.maxChars)
    if (clientMsgId !== null) cleanText(clientMsgId, '/body/client_msg_id', 128)
    const result = await this.writer.append({ senderId, conversationId, content: text, clientMsgId })
    return { message: toMessageView(result.message), created: result.created }
  }

  /** Sender only; a deleted message cannot be edited. */
  async edit(userId: string, messageId: string, content: string): Promise<MessageView> {
    const text = cleanText(content, '/body/content', this.limits.maxChars)
    const row = await this.db.transaction(async (tx) => {
      const msg = await this.visibleMessage(userId, messageId, tx)
      if (msg.senderId !== userId) throw new ForbiddenError('only the sender may edit a message')
      if (msg.deletedAt) throw new ConflictError('the message was deleted')
      const [updated] = await tx
        .update(messages)
        .set({ content: text, editedAt: new Date() })
        .where(eq(messages.id, messageId))
        .returning()
      return updated as MessageRow
    })
    const view = toMessageView(row)
    this.broker.publish({ type: 'message.updated', conversation_id: row.conversationId, message: view })
    return view
  }

  /** Sender, or an admin of the group. Leaves a tombstone: content emptied, seq kept. Idempotent. */
  async delete(userId: string, messageId: string): Promise<MessageView> {
    const { row, changed } = await this.db.transaction(async (tx) => {
      const msg = await this.visibleMessage(userId, messageId, tx)
      // Permission first, so deleting again answers the same as the first time (403 stays 403).
      if (msg.senderId !== userId) {
        const member = await this.conversations.requireMember(userId, msg.conversationId, tx)
        const [conv] = await tx.select().from(conversations).where(eq(conversations.id, msg.conversationId))
        const admin = conv?.kind === 'group' && (member.role === 'owner' || member.role === 'admin')
        if (!admin) throw new ForbiddenError('only the sender or a group admin may delete a message')
      }
      if (msg.deletedAt) return { row: msg, changed: false }
      const [updated] = await tx
        .update(messages)
        .set({ content: '', deletedAt: new Date() })
        .where(eq(messages.id, messageId))
        .returning()
      return { row: updated as MessageRow, changed: true }
    })
    const view = toMessageView(row)
    if (changed)
      this.broker.publish({ type: 'message.deleted', conversation_id: row.conversationId, message: view })
    return view
  }

  /** Moves the caller's read marker forward (never back, never past the last message). */
  async markRead(userId: string, conversationId: string, seq: number): Promise<{ last_read_seq: number }> {
    // Membership is checked by the update itself; only when it moves nothing is it asked apart.
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    const target = sql`least(${seq}::bigint, (select ${conversations.lastSeq} from ${conversations} where ${conversations.id} = ${conversationId}))`
    // One statement decides and moves, so concurrent reads publish each forward move once.
    const [row] = await this.db
      .update(conversationMembers)
      .set({ lastReadSeq: target })
      .where(
        and(
          eq(conversationMembers.conversationId, conversationId),
          eq(conversationMembers.userId, userId),
          sql`${conversationMembers.lastReadSeq} < ${target}`,
        ),
      )
      .returning({ s: conversationMembers.lastReadSeq })
    if (!row) {
      const current = await this.conversations.requireMember(userId, conversationId)
      return { last_read_seq: current.lastReadSeq }
    }
    this.broker.publish({ type: 'read', conversation_id: conversationId, user_id: userId, seq: row.s })
    return { last_read_seq: row.s }
  }

  /**
   * One page of history. `items` are always in ascending `seq` (oldest first) within a page.
   * - `after_seq=N`: the messages after N; `next_cursor` continues forward (newer).
   * - `before_seq=N`, or neither: the newest messages before N; `next_cursor` continues backward (older).
   * - `skip`/`limit` (the seed's form): counted from the oldest message; costs O(skip).
   */
  async history(userId: string, conversationId: string, q: HistoryQuery): Promise<HistoryPage> {
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    try {
      return await this.historyPage(userId, conversationId, q)
    } catch (err) {
      // A non-member learns nothing, not even that their query was malformed: 404 comes first.
      if (err instanceof ValidationError) await this.conversations.requireMember(userId, conversationId)
      throw err
    }
  }

  private async historyPage(userId: string, conversationId: string, q: HistoryQuery): Promise<HistoryPage> {
    const limit = q.limit ?? HISTORY_DEFAULT_LIMIT
    const fromCursor = q.cursor === undefined ? undefined : decodeHistoryCursor(q.cursor)
    const after = fromCursor?.after ?? q.after_seq
    const before = fromCursor?.before ?? q.before_seq
    if (after !== undefined && before !== undefined) {
      throw new ValidationError([
        { path: '/querystring/after_seq', message: 'use either after_seq or before_seq' },
      ])
    }
    if (q.skip !== undefined && (after !== undefined || before !== undefined)) {
      throw new ValidationError([
        { path: '/querystring/skip', message: 'skip cannot be combined with a seq bound' },
      ])
    }
    // The membership check rides in the page query (one round trip); an empty page may mean
    // "not a member", which the explicit check then turns into 404.
    const member = memberOf(conversationId, userId)
    const read = async (cond: SQL | undefined, dir: 'asc' | 'desc', offset = 0) => {
      const rows = await this.page(conversationId, and(member, cond), dir, limit + 1, offset)
      if (rows.length === 0) await this.conversations.requireMember(userId, conversationId)
      return rows
    }
    if (q.skip !== undefined) return forwardPage(await read(undefined, 'asc', q.skip), limit)
    if (after !== undefined) return forwardPage(await read(gt(messages.seq, after), 'asc'), limit)
    const rows = await read(before === undefined ? undefined : lt(messages.seq, before), 'desc')
    const items = rows.slice(0, limit).reverse()
    const first = items[0]
    const more = rows.length > limit && first !== undefined
    return {
      items: items.map(toMessageView),
      next_cursor: more ? encodeCursor({ before: first.seq }) : null,
      next_before_seq: more ? first.seq : null,
      next_after_seq: null,
    }
  }

  /** Messages after `afterSeq`, ascending, for socket resume and gap fill; none unless `userId` is a member. */
  async after(
    conversationId: string,
    afterSeq: number,
    limit: number,
    userId: string,
  ): Promise<MessageView[]> {
    // Membership is re-checked on every read: a socket whose user was just removed reads nothing,
    // even if the removal's event has not reached this instance yet.
    const cond = and(memberOf(conversationId, userId), gt(messages.seq, afterSeq))
    const rows = await this.page(conversationId, cond, 'asc', limit)
    return rows.map(toMessageView)
  }

  /** Resolves once queued sends have committed (graceful shutdown). */
  flushed(): Promise<void> {
    return this.writer.flushed()
  }

  private page(
    conversationId: string,
    cond: SQL | undefined,
    dir: 'asc' | 'desc',
    limit: number,
    offset = 0,
  ) {
    return this.db
      .select()
      .from(messages)
      .where(and(eq(messages.conversationId, conversationId), cond))
      .orderBy(dir === 'asc' ? asc(messages.seq) : desc(messages.seq))
      .limit(limit)
      .offset(offset)
  }

  /** The message if the user is a member of its conversation; 404 otherwise (existence does not leak). */
  private async visibleMessage(userId: string, messageId: string, db: Db): Promise<MessageRow> {
    if (!isUuid(messageId)) throw new NotFoundError('message')
    const [row] = await db
      .select({ m: messages })
      .from(messages)
      .innerJoin(
        conversationMembers,
        and(
          eq(conversationMembers.conversationId, messages.conversationId),
          eq(conversationMembers.userId, userId),
        ),
      )
      .where(eq(messages.id, messageId))
      .for('update', { of: messages })
    if (!row) throw new NotFoundError('message')
    return row.m
  }
}

function forwardPage(rows: MessageRow[], limit: number): HistoryPage {
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  const more = rows.length > limit && last !== undefined
  return {
    items: items.map(toMessageView),
    next_cursor: more ? encodeCursor({ after: last.seq }) : null,
    next_before_seq: null,
    next_after_seq: more ? last.seq : null,
  }
}

function decodeHistoryCursor(cursor: string): { after?: number; before?: number } {
  const c = decodeCursor(cursor, '/querystring/cursor')
  const ok = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)
  if (!ok(c.after) || !ok(c.before) || (c.after === undefined) === (c.before === undefined)) {
    throw new ValidationError([{ path: '/querystring/cursor', message: 'is not a valid cursor' }])
  }
  return c.after === undefined ? { before: c.before as number } : { after: c.after as number }
}

/** `exists(membership)`: true for every row when the user is in the conversation. */
const memberOf = (conversationId: string, userId: string): SQL =>
  sql`exists (select 1 from ${conversationMembers} where ${conversationMembers.conversationId} = ${conversationId} and ${conversationMembers.userId} = ${userId})`
