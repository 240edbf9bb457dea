import { invalid, NotFoundError, ValidationError } from '../errors.js'
import { decodeIdCursor, idPage } from '../lib/cursor.js'
import { isUuid, newId } from '../lib/ids.js'
import type { MessageView } from '../protocol/message.js'
import { type AuditEntry, appendAudit, listAudit } from '../store/audit.js'
import type { Db } from '../store/db.js'
import type { AuditRow, UserRow } from '../store/schema.js'
import * as users from '../store/users.js'
import type { MessageService } from './messages.js'
import type { Broker } from './ports.js'
import { storableProblems } from './text.js'
import { type PrivateUser, toPrivateUser } from './users.js'

/** A user as operators see them: the private view and whether (since when) they are suspended. */
export interface AdminUserView extends PrivateUser {
  suspended_at: string | null
}

export interface AuditView {
  id: string
  actor_id: string
  action: string
  target_type: string
  target_id: string
  details: Record<string, unknown>
  created_at: string
}

export const toAdminUser = (u: UserRow): AdminUserView => ({
  ...toPrivateUser(u),
  suspended_at: u.suspendedAt?.toISOString() ?? null,
})

const toAuditView = (r: AuditRow): AuditView => ({
  id: r.id,
  actor_id: r.actorId,
  action: r.action,
  target_type: r.targetType,
  target_id: r.targetId,
  details: r.details,
  created_at: r.createdAt.toISOString(),
})

/** Writes one audit entry in the action's transaction `tx` (see store/audit.ts). */
export const audit = (tx: Db, entry: AuditEntry): Promise<void> => appendAudit(tx, newId(), entry)

/**
 * What operators do to accounts and messages (docs/moderation.md). Every action writes its audit
 * entry in its own transaction; the caller (http/admin-routes.ts) has checked the operator role.
 */
export class ModerationService {
  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
    private readonly messages: MessageService,
  ) {}

  /**
   * Suspends an account: every session ends and its sockets close on every instance at once
   * (`account.closed`, as for a deleted account); tokens already issued stop working because
   * every request reads the account. `inTx` adds to the transaction (a report's resolution).
   */
  async suspend(
    operator: UserRow,
    userId: string,
    details: Record<string, unknown> = {},
    inTx?: (tx: Db) => Promise<void>,
  ): Promise<UserRow> {
    if (userId === operator.id) throw invalid('id', 'an operator cannot suspend themselves')
    const row = await this.db.transaction(async (tx) => {
      const row = isUuid(userId) ? await users.setSuspended(tx, userId, true) : undefined
      if (!row) throw new NotFoundError('user')
      await audit(tx, {
        actorId: operator.id,
        action: 'user.suspend',
        targetType: 'user',
        targetId: userId,
        details,
      })
      await inTx?.(tx)
      return row
    })
    this.broker.publish({ type: 'account.closed', user_id: userId })
    return row
  }

  /** Lifts a suspension: the account signs in again (its old sessions stay revoked). */
  async unsuspend(operator: UserRow, userId: string): Promise<UserRow> {
    return this.db.transaction(async (tx) => {
      const row = isUuid(userId) ? await users.setSuspended(tx, userId, false) : undefined
      if (!row) throw new NotFoundError('user')
      await audit(tx, {
        actorId: operator.id,
        action: 'user.unsuspend',
        targetType: 'user',
        targetId: userId,
      })
      return row
    })
  }

  /** Deletes any message, by the members' delete path (tombstone, events, pins, search). */
  async deleteMessage(
    operator: UserRow,
    messageId: string,
    inTx?: (tx: Db, changed: boolean) => Promise<void>,
  ): Promise<MessageView> {
    return this.messages.moderatorDelete(operator.id, messageId, async (tx, msg, changed) => {
      if (changed) {
        await audit(tx, {
          actorId: operator.id,
          action: 'message.delete',
          targetType: 'message',
          targetId: msg.id,
          details: { conversation_id: msg.conversationId, seq: msg.seq, sender_id: msg.senderId },
        })
      }
      await inTx?.(tx, changed)
    })
  }

  /** Accounts (not deleted) by name or email substring, suspended or not; keyset pages by id. */
  async listUsers(q: {
    query?: string | undefined
    suspended?: boolean | undefined
    limit: number
    cursor?: string | undefined
  }) {
    const query = (q.query ?? '').trim().toLowerCase()
    const unstorable = storableProblems(query, 'query')
    if (unstorable.length > 0) throw new ValidationError(unstorable)
    const afterId = decodeIdCursor(q.cursor, isUuid)
    const rows = await users.listUsersForOperators(this.db, {
      query,
      suspended: q.suspended,
      afterId,
      limit: q.limit + 1,
    })
    return idPage(rows, q.limit, (r) => r.id, toAdminUser)
  }

  /** The audit log, newest first, filtered; keyset pages by id. */
  async auditLog(q: {
    action?: string | undefined
    actor_id?: string | undefined
    target_id?: string | undefined
    limit: number
    cursor?: string | undefined
  }) {
    const rows = await listAudit(this.db, {
      action: q.action,
      actorId: q.actor_id,
      targetId: q.target_id,
      beforeId: decodeIdCursor(q.cursor, isUuid),
      limit: q.limit + 1,
    })
    return idPage(rows, q.limit, (r) => r.id, toAuditView)
  }
}
