import { and, asc, eq, gt, isNull, lte, ne, notExists, or, sql } from 'drizzle-orm'
import { pgCode } from '../errors.js'
import type { Db } from './db.js'
import {
  conversations,
  conversationMembers as members,
  messages,
  pushCoalescing,
  pushSubscriptions as subs,
  userBlocks,
  users,
} from './schema.js'

export type PushSubscriptionRow = typeof subs.$inferSelect
export type NewSubscription = Omit<PushSubscriptionRow, 'createdAt'>

/**
 * Stores a subscription for `values.userId`. The endpoint is unique: the same browser registered
 * again by the same user updates its keys (`created: false`); one registered by another account
 * moves to this one (a browser receives the pushes of whoever registered it last). Refused with
 * `limit` when the user already holds `max` others. Under the user's row lock, so parallel
 * registrations of one user cannot pass the limit together.
 */
export async function saveSubscription(
  db: Db,
  values: NewSubscription,
  max: number,
): Promise<{ row: PushSubscriptionRow; created: boolean } | 'limit'> {
  return db.transaction(async (tx) => {
    await tx.select({ id: users.id }).from(users).where(eq(users.id, values.userId)).for('update')
    const [existing] = await tx.select().from(subs).where(eq(subs.endpoint, values.endpoint))
    if (existing?.userId === values.userId) {
      const [row] = await tx
        .update(subs)
        .set({ p256dh: values.p256dh, auth: values.auth, expiresAt: values.expiresAt })
        .where(eq(subs.id, existing.id))
        .returning()
      return { row: row as PushSubscriptionRow, created: false }
    }
    const [held] = await tx
      .select({ n: sql<number>`count(*)::int` })
      .from(subs)
      .where(eq(subs.userId, values.userId))
    if ((held?.n ?? 0) >= max) return 'limit'
    if (existing) await tx.delete(subs).where(eq(subs.id, existing.id))
    const [row] = await tx.insert(subs).values(values).returning()
    return { row: row as PushSubscriptionRow, created: true }
  })
}

export function subscriptionsOf(db: Db, userId: string): Promise<PushSubscriptionRow[]> {
  return db.select().from(subs).where(eq(subs.userId, userId)).orderBy(asc(subs.createdAt), asc(subs.id))
}

export async function findSubscription(db: Db, id: string): Promise<PushSubscriptionRow | undefined> {
  const [row] = await db.select().from(subs).where(eq(subs.id, id))
  return row
}

/** Whether any browser is subscribed at all (the outbox skips writing pushes when none is). */
export async function anySubscription(db: Db): Promise<boolean> {
  const [row] = await db.select({ id: subs.id }).from(subs).limit(1)
  return row !== undefined
}

/** Deletes a subscription (only the user's own when `userId` is given); false when there was none. */
export async function deleteSubscription(db: Db, id: string, userId?: string): Promise<boolean> {
  const rows = await db
    .delete(subs)
    .where(and(eq(subs.id, id), userId === undefined ? undefined : eq(subs.userId, userId)))
    .returning({ id: subs.id })
  return rows.length > 0
}

/** Deletes every subscription of `userId` (account deletion; their coalescing state goes with them). */
export async function deleteSubscriptionsOf(db: Db, userId: string): Promise<void> {
  await db.delete(subs).where(eq(subs.userId, userId))
}

/** A subscription a message may be pushed to, with its owner's mute of the conversation. */
export interface PushTarget {
  subscriptionId: string
  userId: string
  mutedUntil: Date | null
}

/**
 * The subscriptions of everyone who was a member when message `seq` was committed and still is
 * (joined before it: `joined_seq < seq`; a member removed since has no membership row, and one
 * removed and added back joined after it), except `senderId` and those who block `senderId`
 * (docs/moderation.md, "Blocks": the group still shows them the message, their devices stay
 * quiet); active accounts only, expired subscriptions left out.
 */
export function pushTargets(
  db: Db,
  conversationId: string,
  seq: number,
  senderId: string | null,
  now: Date,
): Promise<PushTarget[]> {
  return db
    .select({ subscriptionId: subs.id, userId: members.userId, mutedUntil: members.mutedUntil })
    .from(members)
    .innerJoin(users, eq(users.id, members.userId))
    .innerJoin(subs, eq(subs.userId, members.userId))
    .where(
      and(
        eq(members.conversationId, conversationId),
        sql`${members.joinedSeq} < ${seq}`,
        senderId === null ? undefined : ne(members.userId, senderId),
        senderId === null ? undefined : notExists(blocksOf(db, senderId)),
        eq(users.isActive, true),
        isNull(users.deletedAt),
        or(isNull(subs.expiresAt), gt(subs.expiresAt, now)),
      ),
    )
    .orderBy(asc(subs.id))
}

/** The block of `senderId` by the member of the enclosing query: the correlated subquery of `pushTargets`. */
const blocksOf = (db: Db, senderId: string) =>
  db
    .select({ one: sql`1` })
    .from(userBlocks)
    .where(and(eq(userBlocks.blockerId, members.userId), eq(userBlocks.blockedId, senderId)))

/** `userId` has been a member since before message `seq` (the same rule as `pushTargets`). */
export async function memberSince(
  db: Db,
  conversationId: string,
  userId: string,
  seq: number,
): Promise<boolean> {
  const [row] = await db
    .select({ userId: members.userId })
    .from(members)
    .where(
      and(
        eq(members.conversationId, conversationId),
        eq(members.userId, userId),
        sql`${members.joinedSeq} < ${seq}`,
      ),
    )
  return row !== undefined
}

/** What a notification names: the conversation's kind and title, and the sender's name. */
export async function pushContext(
  db: Db,
  conversationId: string,
  senderId: string | null,
): Promise<{ kind: 'direct' | 'group'; title: string | null; senderName: string | null }> {
  const [conv] = await db
    .select({ kind: conversations.kind, title: conversations.title })
    .from(conversations)
    .where(eq(conversations.id, conversationId))
  const [sender] =
    senderId === null
      ? []
      : await db.select({ name: users.fullName }).from(users).where(eq(users.id, senderId))
  return { kind: conv?.kind ?? 'group', title: conv?.title ?? null, senderName: sender?.name ?? null }
}

/** Messages in (`afterSeq`, `upToSeq`] not sent by `userId` and not deleted: what one push announces. */
export async function countNewMessages(
  db: Db,
  conversationId: string,
  afterSeq: number,
  upToSeq: number,
  userId: string,
): Promise<number> {
  const [row] = await db
    .select({ n: sql<number>`count(*)::int` })
    .from(messages)
    .where(
      and(
        eq(messages.conversationId, conversationId),
        gt(messages.seq, afterSeq),
        lte(messages.seq, upToSeq),
        or(isNull(messages.senderId), ne(messages.senderId, userId)),
        isNull(messages.deletedAt),
      ),
    )
  return row?.n ?? 0
}

/**
 * What a delivery of message `seq` to one subscription should do, decided under the row lock of
 * that subscription's coalescing state for the conversation (services/push.ts explains the rules):
 * - `covered`: a push already sent covers it;
 * - `superseded`: a later message's delivery owns the next push, which will cover this one;
 * - `wait`: a push went out less than the window ago; try again in `ms` (this delivery now owns the next push);
 * - `send`: send now, announcing the messages after `sinceSeq` (the window starts now).
 */
export type CoalesceDecision =
  | { kind: 'covered' }
  | { kind: 'superseded' }
  | { kind: 'wait'; ms: number }
  | { kind: 'send'; sinceSeq: number }

export async function claimPush(
  db: Db,
  key: { subscriptionId: string; conversationId: string },
  seq: number,
  now: Date,
  windowMs: number,
): Promise<CoalesceDecision> {
  try {
    return await decide(db, key, seq, now, windowMs)
  } catch (err) {
    // The subscription was deleted meanwhile (foreign key): nothing to push to.
    if (pgCode(err) === '23503') return { kind: 'covered' }
    throw err
  }
}

function decide(
  db: Db,
  key: { subscriptionId: string; conversationId: string },
  seq: number,
  now: Date,
  windowMs: number,
): Promise<CoalesceDecision> {
  return db.transaction(async (tx) => {
    await tx.insert(pushCoalescing).values(key).onConflictDoNothing()
    const where = and(
      eq(pushCoalescing.conversationId, key.conversationId),
      eq(pushCoalescing.subscriptionId, key.subscriptionId),
    )
    const [state] = await tx.select().from(pushCoalescing).where(where).for('update')
    // The subscription was deleted meanwhile (its rows went with it): nothing to push to.
    if (!state) return { kind: 'covered' }
    if (seq <= state.sentSeq) return { kind: 'covered' }
    if (seq < state.ownerSeq) return { kind: 'superseded' }
    const open = state.windowAt === null ? 0 : state.windowAt.getTime() + windowMs - now.getTime()
    if (open > 0) {
      await tx.update(pushCoalescing).set({ ownerSeq: seq }).where(where)
      return { kind: 'wait', ms: open }
    }
    await tx.update(pushCoalescing).set({ ownerSeq: seq, windowAt: now }).where(where)
    return { kind: 'send', sinceSeq: state.sentSeq }
  })
}

/** Records that a push covering everything up to `seq` reached the push service. */
export async function confirmPush(
  db: Db,
  key: { subscriptionId: string; conversationId: string },
  seq: number,
): Promise<void> {
  await db
    .update(pushCoalescing)
    .set({ sentSeq: sql`greatest(${pushCoalescing.sentSeq}, ${seq})` })
    .where(
      and(
        eq(pushCoalescing.conversationId, key.conversationId),
        eq(pushCoalescing.subscriptionId, key.subscriptionId),
      ),
    )
}

/**
 * The message's text as it is now (an edit shows, a deleted message shows nothing) and its first
 * attachment's file name; undefined when it was deleted.
 */
export async function currentContent(
  db: Db,
  conversationId: string,
  messageId: string,
): Promise<{ content: string; attachmentName: string | null } | undefined> {
  const [row] = await db
    .select({ content: messages.content, attachments: messages.attachments, deletedAt: messages.deletedAt })
    .from(messages)
    .where(and(eq(messages.conversationId, conversationId), eq(messages.id, messageId)))
  if (!row || row.deletedAt !== null) return undefined
  return { content: row.content, attachmentName: row.attachments[0]?.filename ?? null }
}
