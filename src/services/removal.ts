import { ForbiddenError } from '../errors.js'
import type { ChatEvent } from '../protocol/events.js'
import type { Position } from '../store/conversations.js'
import type { Db } from '../store/db.js'
import * as members from '../store/members.js'
import type { MemberRow } from '../store/schema.js'

/**
 * The one removal path (leaving, removal by an admin, a ban): run in a transaction holding the
 * conversation lock taken with `{ removal: true }` (`at`), then publish `removedEvent` after commit,
 * so the removed member's sockets on every instance stop at `at.seq`. Undefined when `userId` was
 * not a member. `byOther`: someone else removes them, which the owner cannot be.
 */
export async function removeLocked(
  tx: Db,
  conversationId: string,
  userId: string,
  byOther: boolean,
  at: Position,
): Promise<MemberRow | undefined> {
  const target = await members.deleteMember(tx, conversationId, userId)
  if (!target) return undefined
  if (target.role === 'owner' && byOther) throw new ForbiddenError('the owner cannot be removed')
  if (target.role === 'owner') await members.handOwnershipOn(tx, conversationId)
  await members.recordDeparture(tx, conversationId, userId, at)
  return target
}

export const removedEvent = (conversationId: string, userId: string, at: Position): ChatEvent => ({
  type: 'member.removed',
  conversation_id: conversationId,
  user_id: userId,
  seq: at.seq,
  members_version: at.membersVersion,
})
