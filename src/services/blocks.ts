import { invalid, NotFoundError } from '../errors.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import { isUuid } from '../lib/ids.js'
import * as store from '../store/blocks.js'
import type { Db } from '../store/db.js'
import { activeUserIds } from '../store/users.js'
import type { Broker } from './ports.js'

/** A user the caller blocks, as GET /users/me/blocks lists it. */
export interface BlockView {
  user_id: string
  full_name: string
  blocked_at: string
}

/**
 * Blocking (docs/moderation.md). What a block refuses is enforced where the action happens: the
 * direct conversation's `blocked` flag in the group commit, the pair check when a direct
 * conversation is created, the group add checks (ConversationService), and each socket's filter
 * of presence and typing (ws/follower.ts), which `block.changed` keeps current on every instance.
 */
export class BlockService {
  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
  ) {}

  /** Idempotent. The user must exist (404 otherwise); blocking oneself is a 422. */
  async block(me: string, userId: string): Promise<void> {
    if (userId === me) throw invalid('user_id', 'you cannot block yourself')
    if (!isUuid(userId) || !(await activeUserIds(this.db, [userId])).has(userId)) {
      throw new NotFoundError('user')
    }
    if (await store.setBlock(this.db, me, userId, true)) this.publish(me, userId, true)
  }

  /** Idempotent: unblocking someone not blocked (or no longer existing) changes nothing. */
  async unblock(me: string, userId: string): Promise<void> {
    if (!isUuid(userId) || userId === me) return
    if (await store.setBlock(this.db, me, userId, false)) this.publish(me, userId, false)
  }

  /** The users the caller blocks, newest block first; the cursor is (blocked_at, id) of the last one. */
  async list(me: string, limit: number, cursor: string | undefined) {
    const after = cursor === undefined ? undefined : decodeBlockCursor(cursor)
    const rows = await store.listBlocks(this.db, me, after, limit + 1)
    const page = rows.slice(0, limit)
    const last = page.at(-1)
    return {
      items: page.map(
        (r): BlockView => ({
          user_id: r.userId,
          full_name: r.fullName,
          blocked_at: r.createdAt.toISOString(),
        }),
      ),
      next_cursor:
        rows.length > limit && last
          ? encodeCursor({ at: last.createdAt.toISOString(), id: last.userId })
          : null,
    }
  }

  /** Who blocks `userId`: their presence and typing do not reach `userId`'s sockets. */
  blockersOf(userId: string): Promise<string[]> {
    return store.blockersOf(this.db, userId)
  }

  private publish(blockerId: string, blockedId: string, blocked: boolean): void {
    this.broker.publish({ type: 'block.changed', blocker_id: blockerId, blocked_id: blockedId, blocked })
  }
}

function decodeBlockCursor(cursor: string): { at: Date; id: string } {
  const c = decodeCursor(cursor)
  const at = new Date(String(c.at))
  if (Number.isNaN(at.getTime()) || typeof c.id !== 'string' || !isUuid(c.id)) {
    throw invalid('cursor', 'is not a valid cursor')
  }
  return { at, id: c.id }
}
