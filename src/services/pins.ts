import { ConflictError, ForbiddenError, NotFoundError } from '../errors.js'
import { isUuid } from '../lib/ids.js'
import type { MessageView } from '../protocol/message.js'
import { recordChange } from '../store/changes.js'
import { findConversation } from '../store/conversations.js'
import type { Db } from '../store/db.js'
import { findMember } from '../store/members.js'
import { lockVisibleMessage } from '../store/messages.js'
import { deletePin, insertPin, pinnedAt, pinsPage } from '../store/rich-pages.js'
import type { MessageRow } from '../store/schema.js'
import type { Broker } from './ports.js'
import { richView } from './views.js'

export const PINS_MAX_PAGE = 100

/**
 * Pins: in a group, admins and the owner pin and unpin; in a direct conversation, either member.
 * Each change runs under the message's row lock (as deletes do, which unpin), and is published
 * as `message.pinned` / `message.unpinned` after commit. Idempotent: pinning a pinned message
 * (or unpinning one that is not) changes nothing and publishes nothing.
 */
export class PinService {
  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
  ) {}

  async pin(userId: string, messageId: string): Promise<{ pinned_at: string }> {
    const { msg, pin, at, change } = await this.db.transaction(async (tx) => {
      const msg = await this.allowed(tx, userId, messageId)
      if (msg.deletedAt) throw new ConflictError('the message was deleted')
      const pin = await insertPin(tx, msg.conversationId, msg.id, userId)
      const at = pin?.pinnedAt ?? (await pinnedAt(tx, msg.conversationId, msg.id)) ?? new Date()
      const change = pin ? await recordChange(tx, msg.conversationId, msg.id) : 0
      return { msg, pin, at, change }
    })
    if (pin)
      this.broker.publish({
        type: 'message.pinned',
        conversation_id: msg.conversationId,
        message_id: msg.id,
        seq: msg.seq,
        pinned_by: userId,
        pinned_at: pin.pinnedAt.toISOString(),
        change_seq: change,
      })
    return { pinned_at: at.toISOString() }
  }

  async unpin(userId: string, messageId: string): Promise<void> {
    const { msg, removed, change } = await this.db.transaction(async (tx) => {
      const msg = await this.allowed(tx, userId, messageId)
      const removed = await deletePin(tx, msg.conversationId, msg.id)
      const change = removed ? await recordChange(tx, msg.conversationId, msg.id) : 0
      return { msg, removed, change }
    })
    if (removed) this.publishUnpinned(msg, change)
  }

  /** Pinned messages of a conversation, latest pin first (at most PINS_MAX_PAGE). */
  async list(userId: string, conversationId: string, limit: number): Promise<MessageView[]> {
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    const rows = await pinsPage(this.db, userId, conversationId, limit)
    if (rows.length === 0 && !(await findMember(this.db, conversationId, userId)))
      throw new NotFoundError('conversation')
    return rows.map(richView)
  }

  publishUnpinned(msg: Pick<MessageRow, 'conversationId' | 'id' | 'seq'>, change: number): void {
    this.broker.publish({
      type: 'message.unpinned',
      conversation_id: msg.conversationId,
      message_id: msg.id,
      seq: msg.seq,
      change_seq: change,
    })
  }

  /** The message, locked, when the user may pin it; 404 for a non-member, 403 for a group's plain member. */
  private async allowed(tx: Db, userId: string, messageId: string): Promise<MessageRow> {
    const msg = isUuid(messageId) ? await lockVisibleMessage(tx, userId, messageId) : undefined
    if (!msg) throw new NotFoundError('message')
    const [conv, member] = await Promise.all([
      findConversation(tx, msg.conversationId),
      findMember(tx, msg.conversationId, userId),
    ])
    if (conv?.kind === 'group' && member?.role !== 'owner' && member?.role !== 'admin')
      throw new ForbiddenError('only group admins and the owner may pin messages')
    return msg
  }
}
