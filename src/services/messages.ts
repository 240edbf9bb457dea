import { ConflictError, ForbiddenError, NotFoundError, RateLimitedError, ValidationError } from '../errors.js'
import { encodeCursor } from '../lib/cursor.js'
import { isUuid } from '../lib/ids.js'
import type { ChatEvent } from '../protocol/events.js'
import type { MessageView } from '../protocol/message.js'
import { type AttachmentRef, releaseMessageAttachments } from '../store/attachments.js'
import { changedSince, changePositions, recordChange } from '../store/changes.js'
import { findConversation } from '../store/conversations.js'
import type { Db } from '../store/db.js'
import type { ThreadChange } from '../store/message-batch-rich.js'
import { type RichMessage, richByIds } from '../store/message-views.js'
import * as store from '../store/messages.js'
import { reactionState } from '../store/reactions.js'
import { primaryReads, type Reads } from '../store/read-replica.js'
import { advanceReadMarker } from '../store/reads.js'
import { deletePin } from '../store/rich-pages.js'
import type { MessageRow } from '../store/schema.js'
import type { AttachmentService } from './attachments.js'
import type { ConversationService } from './conversations.js'
import {
  forwardPage,
  HISTORY_DEFAULT_LIMIT,
  type HistoryPage,
  type HistoryQuery,
  pageBound,
} from './history-pages.js'
import { MessageWriter, type SendProbe } from './message-writer.js'
import { Outbox } from './outbox.js'
import type { Broker, SendRate } from './ports.js'
import { parseRich, type SendExtras } from './send-extras.js'
import { cleanText } from './text.js'
import { richView } from './views.js'

export {
  HISTORY_DEFAULT_LIMIT,
  HISTORY_MAX_LIMIT,
  type HistoryPage,
  type HistoryQuery,
} from './history-pages.js'
export { MENTION_ALL, MENTIONS_MAX, type SendExtras } from './send-extras.js'

export interface MessageLimits {
  maxChars: number
  batchMax: number
  /** Sends that may wait for storage; past it sends are refused (`OverloadedError`). */
  queueMax?: number | undefined
  /** The per-user send bucket; undefined when RATE_LIMITS=off. */
  sendRate?: SendRate | undefined
  /** The database pipelines a transaction's statements (postgres.js): see `WriterOptions`. */
  pipelined?: boolean | undefined
}

const CLIENT_MSG_ID_MAX = 128

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
    private readonly attachments: AttachmentService,
    /** History pages and resume reads: a replica when one is configured (it serves only fresh reads). */
    private readonly reads: Reads = primaryReads(db),
    /** `message.created`, `message.updated` and `message.deleted` go out through it. */
    private readonly outbox: Outbox = new Outbox([]),
    /** Stage timings, batch sizes and shed sends (the metrics). */
    probe?: SendProbe,
  ) {
    this.writer = new MessageWriter(
      db,
      { maxBatch: limits.batchMax, maxQueue: limits.queueMax, probe, pipelined: limits.pipelined },
      (created, versions, threads) => this.publishCreated(created, versions, threads),
      outbox,
    )
  }

  /** Sends waiting for storage (the `chat_send_queue_depth` gauge). */
  get queueDepth(): number {
    return this.writer.depth
  }

  /** Whether storage is behind, and when it has caught up: transports stop reading new sends meanwhile. */
  get intake(): Pick<MessageWriter, 'pressed' | 'whenRelieved'> {
    return this.writer
  }

  /**
   * Stores a message and publishes it after commit. With a `clientMsgId` already used by this
   * sender in this conversation, returns the first message (`created: false`) and publishes nothing.
   * With `attachmentIds`, the content may be empty.
   */
  async send(
    senderId: string,
    conversationId: string,
    content: string,
    clientMsgId: string | null = null,
    extras: SendExtras = {},
    /** When the send arrived (`performance.now()`), for the stage timings; now when absent. */
    receivedAt?: number,
  ): Promise<{ message: MessageView; created: boolean }> {
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    // Refused before any work when storage is behind: the cheapest point to shed load.
    if (this.writer.full) throw this.writer.refuse()
    const { text, attachments } = await this.writer.admitting(async () => {
      // Here, on the one path every message takes, so no door (REST or socket) gets around it.
      if (this.limits.sendRate && !(await this.limits.sendRate.take(senderId))) throw new RateLimitedError(1)
      const attachmentIds = extras.attachment_ids ?? []
      const text = cleanText(content, 'content', this.limits.maxChars, attachmentIds.length > 0 ? 0 : 1)
      if (clientMsgId !== null) cleanText(clientMsgId, 'client_msg_id', CLIENT_MSG_ID_MAX)
      return {
        text,
        attachments: await this.attachments.prepare(senderId, conversationId, attachmentIds, clientMsgId),
      }
    })
    return this.writer.append(
      {
        senderId,
        conversationId,
        content: text,
        clientMsgId,
        attachments,
        ...parseRich(extras),
      },
      receivedAt,
    )
  }

  /** Sender only; a deleted message cannot be edited. */
  async edit(userId: string, messageId: string, content: string): Promise<MessageView> {
    const text = cleanText(content, 'content', this.limits.maxChars)
    const { view, reactors } = await this.db.transaction(async (tx) => {
      const msg = await this.visibleMessage(tx, userId, messageId)
      if (msg.senderId !== userId) throw new ForbiddenError('only the sender may edit a message')
      if (msg.deletedAt) throw new ConflictError('the message was deleted')
      await store.editMessage(tx, msg, text)
      const full = await broadcastView(tx, msg)
      // Last but the outbox row: it locks the conversation's row until the commit.
      full.view.change_seq = await recordChange(tx, msg.conversationId, msg.id)
      await this.recordOutbox(tx, 'message.updated', full.view)
      return full
    })
    this.outbox.committed()
    this.broker.publish({
      type: 'message.updated',
      conversation_id: view.conversation_id,
      message: view,
      reactors,
    })
    return personal(view, reactors, userId)
  }

  /**
   * Sender, or an admin of the group. Leaves a tombstone: content and attachments emptied, seq
   * kept; a pin is removed with it. Idempotent. The attachments' objects are deleted after commit
   * (the sweep retries).
   */
  async delete(userId: string, messageId: string): Promise<MessageView> {
    return this.deleteWith(userId, async (tx) => {
      const msg = await this.visibleMessage(tx, userId, messageId)
      // Permission first, so deleting again answers the same as the first time (403 stays 403).
      if (msg.senderId !== userId) {
        const member = await this.conversations.requireMember(userId, msg.conversationId, tx)
        const conv = await findConversation(tx, msg.conversationId)
        const admin = conv?.kind === 'group' && (member.role === 'owner' || member.role === 'admin')
        if (!admin) throw new ForbiddenError('only the sender or a group admin may delete a message')
      }
      return msg
    })
  }

  /**
   * An operator deletes any message (moderation), by the same path as `delete`: same tombstone,
   * events, pin removal and search exclusion. `inTx` runs in the delete's transaction (the audit
   * row, a report's resolution), with `changed` false when the message was deleted already.
   */
  async moderatorDelete(
    operatorId: string,
    messageId: string,
    inTx: (tx: Db, msg: MessageRow, changed: boolean) => Promise<void>,
  ): Promise<MessageView> {
    return this.deleteWith(
      operatorId,
      async (tx) => {
        const msg = isUuid(messageId) ? await store.lockMessage(tx, messageId) : undefined
        if (!msg) throw new NotFoundError('message')
        return msg
      },
      inTx,
    )
  }

  /** Tombstones the message `find` locks (idempotent), then publishes; the view is `viewerId`'s. */
  private async deleteWith(
    viewerId: string,
    find: (tx: Db) => Promise<MessageRow>,
    inTx?: (tx: Db, msg: MessageRow, changed: boolean) => Promise<void>,
  ): Promise<MessageView> {
    let released: AttachmentRef[] = []
    const { row, changed, unpinned, full } = await this.db.transaction(async (tx) => {
      const msg = await find(tx)
      const changed = !msg.deletedAt
      if (changed) {
        released = await releaseMessageAttachments(tx, msg.conversationId, msg.id)
        await store.tombstoneMessage(tx, msg)
      }
      const unpinned = changed && (await deletePin(tx, msg.conversationId, msg.id))
      await inTx?.(tx, msg, changed)
      const full = await broadcastView(tx, msg)
      // One change for the delete and its unpin; last but the outbox row, as it locks the
      // conversation's row until the commit.
      if (changed) {
        full.view.change_seq = await recordChange(tx, msg.conversationId, msg.id)
        await this.recordOutbox(tx, 'message.deleted', full.view)
      }
      return { row: msg, changed, unpinned, full }
    })
    if (changed) this.outbox.committed()
    // Not awaited: the answer does not wait for storage, and a failure is retried by the sweep.
    this.attachments.remove(released).catch(() => undefined)
    const { view, reactors } = full
    if (changed)
      this.broker.publish({
        type: 'message.deleted',
        conversation_id: row.conversationId,
        message: view,
        reactors,
      })
    if (unpinned)
      this.broker.publish({
        type: 'message.unpinned',
        conversation_id: row.conversationId,
        message_id: row.id,
        seq: row.seq,
        change_seq: view.change_seq,
      })
    return personal(view, reactors, viewerId)
  }

  /** Moves the caller's read marker forward (never back, never past the last message). */
  async markRead(userId: string, conversationId: string, seq: number): Promise<{ last_read_seq: number }> {
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    // Membership is checked by the update itself; only when it moves nothing is it asked apart.
    const moved = await advanceReadMarker(this.db, conversationId, userId, seq)
    if (moved === undefined) {
      const current = await this.conversations.requireMember(userId, conversationId)
      return { last_read_seq: current.lastReadSeq }
    }
    this.broker.publish({ type: 'read', conversation_id: conversationId, user_id: userId, seq: moved })
    return { last_read_seq: moved }
  }

  /**
   * One page of history. `items` are always in ascending `seq` (oldest first) within a page.
   * - `after_seq=N`: the messages after N; `next_cursor` continues forward (newer).
   * - `before_seq=N`, or neither: the newest messages before N; `next_cursor` continues backward (older).
   * - `skip`/`limit` (offset paging): counted from the oldest message; costs O(skip).
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
    const bound = pageBound(q)
    // Membership rides in the page query (one round trip); an empty page may mean "not a
    // member", which the explicit check (on the same database) then turns into 404.
    const rows = await this.reads.fresh('history', async (db) => {
      const page = await store.messagePage(db, conversationId, userId, bound, limit + 1)
      if (page.length === 0) await this.conversations.requireMember(userId, conversationId, db)
      return page
    })
    if (bound.kind !== 'before') return forwardPage(rows, limit)
    const items = rows.slice(0, limit).reverse()
    const first = items[0]
    const more = rows.length > limit && first !== undefined
    return {
      items: items.map(richView),
      next_cursor: more ? encodeCursor({ before: first.seq }) : null,
      next_before_seq: more ? first.seq : null,
      next_after_seq: null,
    }
  }

  /**
   * Messages after `afterSeq`, ascending, for socket delivery, resume and gap fill: only those that
   * reached `userId` as a member. Re-checked on every read, so a socket whose user was just removed
   * reads up to the removal and nothing after it, even before the removal's event arrives.
   */
  async after(
    conversationId: string,
    afterSeq: number,
    limit: number,
    userId: string,
  ): Promise<MessageView[]> {
    const rows = await this.reads.fresh('resume', (db) =>
      store.messagesAfterFor(db, conversationId, userId, afterSeq, limit),
    )
    return rows.map(richView)
  }

  /** The current change counter of each conversation given (`sync` with `changes`). */
  changePositions(conversationIds: string[]): Promise<Map<string, number>> {
    return this.reads.fresh('resume', (db) => changePositions(db, conversationIds))
  }

  /**
   * Messages up to `upToSeq` whose latest change is after `afterChange`, in change order, among
   * those that reached `userId` as a member: what `sync` re-sends to a client that holds them.
   */
  async changedSince(
    conversationId: string,
    userId: string,
    afterChange: number,
    upToSeq: number,
    limit: number,
  ): Promise<MessageView[]> {
    const rows = await this.reads.fresh('resume', (db) =>
      changedSince(db, conversationId, userId, afterChange, upToSeq, limit),
    )
    return rows.map(richView)
  }

  /** Resolves once queued sends have committed (graceful shutdown). */
  flushed(): Promise<void> {
    return this.writer.flushed()
  }

  /** The one publish step for new messages, run after each group commit in seq order. */
  private publishCreated(
    created: MessageView[],
    membersVersion: Map<string, number>,
    threads: ThreadChange[],
  ): void {
    for (const message of created) {
      this.broker.publish({
        type: 'message.created',
        conversation_id: message.conversation_id,
        message,
        members_version: membersVersion.get(message.conversation_id) ?? 0,
      })
    }
    // After the replies themselves, so a socket gets a reply before its root's new count.
    for (const t of threads) this.broker.publish(threadEvent(t))
  }

  /** An edit or a delete, for the outbox, in the change's transaction. */
  private recordOutbox(tx: Db, type: 'message.updated' | 'message.deleted', view: MessageView) {
    const conversationId = view.conversation_id
    return this.outbox.record(tx, [
      { type, conversationId, data: { conversation_id: conversationId, message: view } },
    ])
  }

  /** The message if the user is a member of its conversation; 404 otherwise (existence does not leak). */
  private async visibleMessage(tx: Db, userId: string, messageId: string): Promise<MessageRow> {
    const row = isUuid(messageId) ? await store.lockVisibleMessage(tx, userId, messageId) : undefined
    if (!row) throw new NotFoundError('message')
    return row
  }
}

/** A message as every member sees it (`me` false) and who reacted with what, for an event. */
async function broadcastView(tx: Db, msg: MessageRow) {
  const [full] = await richByIds(tx, null, msg.conversationId, [msg.id])
  const { reactors } = await reactionState(tx, msg.conversationId, msg.id, msg.reactionsRev)
  return { view: richView(full as RichMessage), reactors }
}

/** The view with `me` set for `userId`. */
function personal(view: MessageView, reactors: Record<string, string[]>, userId: string): MessageView {
  const mine = new Set(reactors[userId] ?? [])
  return { ...view, reactions: view.reactions.map((r) => ({ ...r, me: mine.has(r.emoji) })) }
}

const threadEvent = (t: ThreadChange): ChatEvent => ({
  type: 'message.thread',
  conversation_id: t.conversationId,
  message_id: t.messageId,
  seq: t.seq,
  change_seq: t.changeSeq,
  thread: {
    reply_count: t.thread.replyCount,
    last_reply_at: t.thread.lastReplyAt.toISOString(),
    participants: t.thread.participants,
  },
})
