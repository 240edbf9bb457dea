import { and, asc, eq, sql } from 'drizzle-orm'
import type { Db } from './db.js'
import { REACTION_USERS_SHOWN } from './message-views.js'
import { messages, messageReactions as reactions } from './schema.js'

/** A message's reactions in full: the summary every member sees, and who reacted with what. */
export interface ReactionState {
  totals: { emoji: string; count: number; user_ids: string[] }[]
  /** user id → the emojis they reacted with. */
  reactors: Record<string, string[]>
  /** The message's reactions revision after the change. */
  rev: number
}

export interface ReactionCounts {
  /** Distinct emojis on the message. */
  distinct: number
  /** Emojis this user put on the message. */
  mine: string[]
  /** The emoji is on the message already (by anyone). */
  present: boolean
}

/** What the limits are checked against; run under the message's row lock. */
export async function reactionCounts(
  tx: Db,
  conversationId: string,
  messageId: string,
  userId: string,
  emoji: string,
): Promise<ReactionCounts> {
  const rows = await tx
    .select({ emoji: reactions.emoji, mine: sql<boolean>`bool_or(${reactions.userId} = ${userId})` })
    .from(reactions)
    .where(and(eq(reactions.conversationId, conversationId), eq(reactions.messageId, messageId)))
    .groupBy(reactions.emoji)
  return {
    distinct: rows.length,
    mine: rows.filter((r) => r.mine).map((r) => r.emoji),
    present: rows.some((r) => r.emoji === emoji),
  }
}

/** Adds one reaction; false when the user had it already. */
export async function insertReaction(
  tx: Db,
  conversationId: string,
  messageId: string,
  userId: string,
  emoji: string,
): Promise<boolean> {
  const rows = await tx
    .insert(reactions)
    .values({ conversationId, messageId, userId, emoji })
    .onConflictDoNothing()
    .returning({ e: reactions.emoji })
  return rows.length > 0
}

/** Removes one reaction; false when the user did not have it. */
export async function deleteReaction(
  tx: Db,
  conversationId: string,
  messageId: string,
  userId: string,
  emoji: string,
): Promise<boolean> {
  const rows = await tx
    .delete(reactions)
    .where(
      and(
        eq(reactions.conversationId, conversationId),
        eq(reactions.messageId, messageId),
        eq(reactions.userId, userId),
        eq(reactions.emoji, emoji),
      ),
    )
    .returning({ e: reactions.emoji })
  return rows.length > 0
}

/** Bumps the message's reactions revision; returns the new one. */
export async function bumpReactionsRev(tx: Db, messageId: string): Promise<number> {
  const [row] = await tx
    .update(messages)
    .set({ reactionsRev: sql`${messages.reactionsRev} + 1` })
    .where(eq(messages.id, messageId))
    .returning({ rev: messages.reactionsRev })
  return row?.rev ?? 0
}

/** The message's reactions, emojis in the order they were first used, users in the order they reacted. */
export async function reactionState(
  db: Db,
  conversationId: string,
  messageId: string,
  rev: number,
): Promise<ReactionState> {
  const rows = await db
    .select({ emoji: reactions.emoji, userId: reactions.userId })
    .from(reactions)
    .where(and(eq(reactions.conversationId, conversationId), eq(reactions.messageId, messageId)))
    .orderBy(asc(reactions.createdAt), asc(reactions.userId))
  const byEmoji = new Map<string, string[]>()
  const reactors: Record<string, string[]> = {}
  for (const r of rows) {
    const users = byEmoji.get(r.emoji) ?? []
    users.push(r.userId)
    byEmoji.set(r.emoji, users)
    reactors[r.userId] = [...(reactors[r.userId] ?? []), r.emoji]
  }
  const totals = [...byEmoji].map(([emoji, users]) => ({
    emoji,
    count: users.length,
    user_ids: users.slice(0, REACTION_USERS_SHOWN),
  }))
  return { totals, reactors, rev }
}
