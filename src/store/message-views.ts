import { and, eq, inArray, type SQL, sql } from 'drizzle-orm'
import { alias } from 'drizzle-orm/pg-core'
import type { Db } from './db.js'
import {
  type MessageRow,
  messageChanges,
  messagePins,
  messageReactions,
  messages,
  messageThreads,
} from './schema.js'

/** Reactions summary entries: at most this many user ids are listed per emoji. */
export const REACTION_USERS_SHOWN = 5

export interface ParentInfo {
  id: string
  seq: number
  senderId: string | null
  /** The first characters of the parent's content; null when it was deleted. */
  excerpt: string | null
}

export interface ThreadInfo {
  replyCount: number
  lastReplyAt: Date
  participants: string[]
}

export interface ReactionInfo {
  emoji: string
  count: number
  userIds: string[]
  me: boolean
}

/** What a message's view shows beside its own row, read together with it. */
export interface MessageExtras {
  parent: ParentInfo | null
  thread: ThreadInfo | null
  reactions: ReactionInfo[]
  pinnedAt: Date | null
  /** The conversation's change counter at the message's latest change (0: never changed). */
  changeSeq: number
}

/** A message row with its extras. */
export type RichMessage = MessageRow & { extras: MessageExtras }

export const EXCERPT_CHARS = 100
const parent = alias(messages, 'parent')

/**
 * The reactions summary of `messages`' current row as JSON, `me` for `viewerId` (null: nobody).
 * One index range on message_reactions' primary key per message that ever had a reaction (its
 * `reactions_rev` moved); none for the others, which are most of any history page.
 */
export const reactionSummary = (
  viewerId: string | null,
): SQL<unknown> => sql`case when ${messages.reactionsRev} = 0 then '[]'::json else (
  select coalesce(json_agg(json_build_array(r.emoji, r.n, r.ids, r.me) order by r.first, r.emoji), '[]'::json)
  from (
    select x.emoji, count(*)::int as n, (array_agg(x.user_id order by x.created_at, x.user_id))[1:${sql.raw(String(REACTION_USERS_SHOWN))}] as ids,
      coalesce(bool_or(x.user_id = ${viewerId}::uuid), false) as me, min(x.created_at) as first
    from ${messageReactions} x
    where x.conversation_id = ${messages.conversationId} and x.message_id = ${messages.id}
    group by x.emoji
  ) r) end`

/**
 * Messages with everything their views show (the replied-to message, thread summary, reactions
 * with `me` for `viewerId`, pin), in one statement: left joins on primary keys and a correlated
 * summary, so a page costs the same round trips as the bare rows. `change_seq` comes from
 * `message_changes` (store/changes.ts). Add the where/order/limit.
 */
export function selectRich(db: Db, viewerId: string | null) {
  return db
    .select({
      m: messages,
      parentId: parent.id,
      parentSeq: parent.seq,
      parentSender: parent.senderId,
      parentExcerpt: sql<
        string | null
      >`case when ${parent.deletedAt} is null then left(${parent.content}, ${EXCERPT_CHARS}) end`,
      replyCount: messageThreads.replyCount,
      lastReplyAt: messageThreads.lastReplyAt,
      participants: messageThreads.participants,
      pinnedAt: messagePins.pinnedAt,
      changeSeq: messageChanges.changeSeq,
      reactions: reactionSummary(viewerId),
    })
    .from(messages)
    .leftJoin(
      parent,
      and(eq(parent.conversationId, messages.conversationId), eq(parent.id, messages.replyToId)),
    )
    .leftJoin(
      messageThreads,
      and(
        eq(messageThreads.conversationId, messages.conversationId),
        eq(messageThreads.messageId, messages.id),
      ),
    )
    .leftJoin(
      messagePins,
      and(eq(messagePins.conversationId, messages.conversationId), eq(messagePins.messageId, messages.id)),
    )
    .leftJoin(
      messageChanges,
      and(
        eq(messageChanges.conversationId, messages.conversationId),
        eq(messageChanges.messageId, messages.id),
      ),
    )
}

type RichRow = Awaited<ReturnType<ReturnType<typeof selectRich>['execute']>>[number]

/** The raw JSON of `reactionSummary` as typed entries (the drivers may hand JSON over parsed or as text). */
export function parseReactions(value: unknown): ReactionInfo[] {
  const list = (typeof value === 'string' ? JSON.parse(value) : (value ?? [])) as [
    string,
    number,
    string[],
    boolean,
  ][]
  return list.map(([emoji, count, userIds, me]) => ({ emoji, count: Number(count), userIds, me }))
}

export function toRich(r: RichRow): RichMessage {
  return {
    ...r.m,
    extras: {
      parent:
        r.parentId !== null && r.parentSeq !== null
          ? { id: r.parentId, seq: r.parentSeq, senderId: r.parentSender, excerpt: r.parentExcerpt }
          : null,
      thread:
        r.replyCount !== null && r.lastReplyAt !== null
          ? { replyCount: r.replyCount, lastReplyAt: r.lastReplyAt, participants: r.participants ?? [] }
          : null,
      reactions: parseReactions(r.reactions),
      pinnedAt: r.pinnedAt,
      changeSeq: r.changeSeq ?? 0,
    },
  }
}

/** The messages with these ids in one conversation, with their extras for `viewerId`. */
export async function richByIds(
  db: Db,
  viewerId: string | null,
  conversationId: string,
  ids: string[],
): Promise<RichMessage[]> {
  if (ids.length === 0) return []
  const rows = await selectRich(db, viewerId).where(
    and(eq(messages.conversationId, conversationId), inArray(messages.id, ids)),
  )
  return rows.map(toRich)
}

/** Extras for a message that has none yet (just stored). */
export const noExtras = (parentInfo: ParentInfo | null = null): MessageExtras => ({
  parent: parentInfo,
  thread: null,
  reactions: [],
  pinnedAt: null,
  changeSeq: 0,
})
