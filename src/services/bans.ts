import { invalid, NotFoundError } from '../errors.js'
import { decodeIdCursor, idPage } from '../lib/cursor.js'
import { isUuid } from '../lib/ids.js'
import * as bans from '../store/bans.js'
import * as convs from '../store/conversations.js'
import type { Db } from '../store/db.js'
import { findActiveUser } from '../store/users.js'
import { type ConversationService, requireAdmin } from './conversations.js'
import { audit } from './moderation.js'
import type { Broker } from './ports.js'
import { removedEvent, removeLocked } from './removal.js'

export interface BanView {
  user_id: string
  full_name: string
  banned_by: string | null
  created_at: string
}

const toBanView = (b: bans.BanRow): BanView => ({
  user_id: b.userId,
  full_name: b.fullName,
  banned_by: b.bannedBy,
  created_at: b.createdAt.toISOString(),
})

/**
 * Group bans (docs/moderation.md): owners and admins ban anyone but the owner. A banned member is
 * removed by the one removal path (same events, so their sockets stop on every instance at once),
 * and nobody can add them back until they are unbanned (`addMember` refuses with `banned`).
 */
export class BanService {
  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
    private readonly conversations: ConversationService,
  ) {}

  /** `banned: false` when they were banned already; `removed`: they were a member until now. */
  async ban(
    me: string,
    conversationId: string,
    userId: string,
  ): Promise<{ banned: boolean; removed: boolean }> {
    await this.requireGroupAdmin(me, conversationId)
    if (userId === me) throw invalid('user_id', 'cannot ban yourself')
    if (!isUuid(userId) || !(await findActiveUser(this.db, userId))) throw new NotFoundError('user')
    const result = await this.db.transaction(async (tx) => {
      // The removal's lock: a concurrent add waits for it, then sees the ban.
      const at = await convs.lockConversation(tx, conversationId, { removal: true })
      const removed = await removeLocked(tx, conversationId, userId, true, at)
      if (removed) await this.conversations.recordRemoval(tx, conversationId, userId, me, at)
      const banned = await bans.insertBan(tx, conversationId, userId, me)
      if (banned) {
        await audit(tx, {
          actorId: me,
          action: 'member.ban',
          targetType: 'user',
          targetId: userId,
          details: { conversation_id: conversationId, removed: removed !== undefined },
        })
      }
      return { at, banned, removed: removed !== undefined }
    })
    if (result.removed) {
      this.conversations.outboxCommitted()
      this.broker.publish(removedEvent(conversationId, userId, result.at))
    }
    return { banned: result.banned, removed: result.removed }
  }

  /** Lifts a ban (404 when there is none); the user can be added again, not re-added by this. */
  async unban(me: string, conversationId: string, userId: string): Promise<void> {
    await this.requireGroupAdmin(me, conversationId)
    await this.db.transaction(async (tx) => {
      if (!isUuid(userId) || !(await bans.deleteBan(tx, conversationId, userId)))
        throw new NotFoundError('ban')
      await audit(tx, {
        actorId: me,
        action: 'member.unban',
        targetType: 'user',
        targetId: userId,
        details: { conversation_id: conversationId },
      })
    })
  }

  async list(me: string, conversationId: string, limit: number, cursor: string | undefined) {
    await this.requireGroupAdmin(me, conversationId)
    const after = decodeIdCursor(cursor, isUuid)
    const rows = await bans.listBans(this.db, conversationId, after, limit + 1)
    return idPage(rows, limit, (r) => r.userId, toBanView)
  }

  /** 404 for a non-member, 422 for a direct conversation (no bans there), 403 for a plain member. */
  private async requireGroupAdmin(me: string, conversationId: string): Promise<void> {
    const member = await this.conversations.requireMember(me, conversationId)
    const conv = await convs.findConversation(this.db, conversationId)
    if (conv?.kind !== 'group') throw invalid('id', 'a direct conversation has no bans')
    requireAdmin(member)
  }
}
