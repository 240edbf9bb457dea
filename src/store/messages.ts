import { and, asc, desc, eq, gt, lt, or, type SQL, sql } from 'drizzle-orm'
import type { Db } from './db.js'
import { isMember, wasMemberAt } from './members.js'
import { type RichMessage, selectRich, toRich } from './message-views.js'
import { type MessageRow, conversationMembers as members, messages } from './schema.js'

/** Which messages of a conversation a page holds. */
export type PageBound =
  | { kind: 'after'; seq: number }
  | { kind: 'before'; seq: number | undefined }
  | { kind: 'skip'; skip: number }

/**
 * One page of a conversation's messages, visible only to a member: for a non-member (or an
 * unknown conversation) the page is empty, decided in the same query. `after` and `skip` pages
 * ascend; `before` pages descend from the bound (the newest first).
 */
export async function messagePage(
  db: Db,
  conversationId: string,
  viewerId: string,
  bound: PageBound,
  limit: number,
): Promise<RichMessage[]> {
  const cond: SQL | undefined =
    bound.kind === 'after'
      ? gt(messages.seq, bound.seq)
      : bound.kind === 'before' && bound.seq !== undefined
        ? lt(messages.seq, bound.seq)
        : undefined
  const order = bound.kind === 'before' ? desc(messages.seq) : asc(messages.seq)
  if (bound.kind !== 'skip') {
    const kind = bound.kind === 'after' ? 'after' : bound.seq === undefined ? 'newest' : 'before'
    const rows = await keysetPage(db, kind).execute({
      c: conversationId,
      viewer: viewerId,
      seq: bound.kind === 'after' ? bound.seq : (bound.seq ?? 0),
      limit,
    })
    return rows.map(toRich)
  }
  const mine = and(eq(messages.conversationId, conversationId), isMember(conversationId, viewerId), cond)
  // A `skip` page: the bare page first, then its extras: joined before the OFFSET, they would
  // run for every skipped row too.
  const page = db
    .select({ id: messages.id })
    .from(messages)
    .where(mine)
    .orderBy(order)
    .limit(limit)
    .offset(bound.skip)
    .as('page')
  const rows = await selectRich(db, viewerId)
    .innerJoin(page, eq(page.id, messages.id))
    .where(eq(messages.conversationId, conversationId))
    .orderBy(order)
  return rows.map(toRich)
}

type KeysetKind = 'after' | 'before' | 'newest'
const keysetPages = new WeakMap<Db, Map<KeysetKind, ReturnType<typeof prepareKeysetPage>>>()

/**
 * A keyset page straight off the (conversation_id, seq) index: the joins of the extras run for the
 * rows the LIMIT keeps and no others, and nothing is read twice. Built once per database handle
 * and kind, then run with its parameters: building this statement (four joins and the reactions
 * summary) took more of the server's CPU per history request than mapping and viewing the rows
 * (docs/performance.md, "history").
 */
function keysetPage(db: Db, kind: KeysetKind) {
  let byKind = keysetPages.get(db)
  if (!byKind) {
    byKind = new Map()
    keysetPages.set(db, byKind)
  }
  let page = byKind.get(kind)
  if (!page) {
    page = prepareKeysetPage(db, kind)
    byKind.set(kind, page)
  }
  return page
}

function prepareKeysetPage(db: Db, kind: KeysetKind) {
  // Typed as the strings they stand for; the values come with `execute`.
  const c = sql.placeholder('c') as unknown as string
  const viewer = sql.placeholder('viewer') as unknown as string
  const seq = sql.placeholder('seq')
  const cond =
    kind === 'after' ? gt(messages.seq, seq) : kind === 'before' ? lt(messages.seq, seq) : undefined
  return selectRich(db, viewer)
    .where(and(eq(messages.conversationId, c), isMember(c, viewer), cond))
    .orderBy(kind === 'after' ? asc(messages.seq) : desc(messages.seq))
    .limit(sql.placeholder('limit'))
    .prepare(`history_${kind}`)
}

/**
 * Messages after `afterSeq`, ascending, that reached `userId` as a member: for socket delivery and
 * resume, which go on up to a removal (and no further) after the member was removed.
 */
export async function messagesAfterFor(
  db: Db,
  conversationId: string,
  userId: string,
  afterSeq: number,
  limit: number,
): Promise<RichMessage[]> {
  const rows = await selectRich(db, userId)
    .where(
      and(
        eq(messages.conversationId, conversationId),
        gt(messages.seq, afterSeq),
        wasMemberAt(conversationId, userId, messages.seq),
      ),
    )
    .orderBy(asc(messages.seq))
    .limit(limit)
  return rows.map(toRich)
}

/**
 * The last message of each conversation given with its last seq, with its extras for `viewerId`
 * (the conversation list shows the same Message view as history): one query for the whole page.
 */
export async function lastMessages(
  db: Db,
  viewerId: string,
  conversations: { id: string; lastSeq: number }[],
): Promise<RichMessage[]> {
  const wanted = conversations.filter((c) => c.lastSeq > 0)
  if (wanted.length === 0) return []
  const rows = await selectRich(db, viewerId).where(
    or(...wanted.map((c) => and(eq(messages.conversationId, c.id), eq(messages.seq, c.lastSeq)))),
  )
  return rows.map(toRich)
}

/** A message's primary key. */
export type MessageKey = Pick<MessageRow, 'conversationId' | 'id'>

const byKey = (m: MessageKey) => and(eq(messages.conversationId, m.conversationId), eq(messages.id, m.id))

/**
 * The message, locked for update, if `userId` is a member of its conversation; undefined
 * otherwise, so its existence does not leak. Run inside a transaction.
 */
export async function lockVisibleMessage(
  tx: Db,
  userId: string,
  messageId: string,
): Promise<MessageRow | undefined> {
  const [row] = await tx
    .select({ m: messages })
    .from(messages)
    .innerJoin(members, and(eq(members.conversationId, messages.conversationId), eq(members.userId, userId)))
    .where(eq(messages.id, messageId))
    // NO KEY UPDATE, not UPDATE: it still serializes every change to the message, but leaves
    // the FOR KEY SHARE that a foreign key check takes (the group commit's thread summary and
    // change rows reference the root) free. With FOR UPDATE, a reaction holding the root and
    // waiting for the conversation's row (store/changes.ts) would deadlock with a batch holding
    // that row and checking the key.
    .for('no key update', { of: messages })
  return row?.m
}

/** The message, locked for update, whoever asks: for operators, who act on any conversation. */
export async function lockMessage(tx: Db, messageId: string): Promise<MessageRow | undefined> {
  const [row] = await tx.select().from(messages).where(eq(messages.id, messageId)).for('update')
  return row
}

/** Changes are addressed by the full key, so a distributed table routes them to one shard. */
export async function editMessage(db: Db, message: MessageKey, content: string): Promise<MessageRow> {
  const [row] = await db
    .update(messages)
    .set({ content, editedAt: new Date() })
    .where(byKey(message))
    .returning()
  return row as MessageRow
}

/** Leaves a tombstone: the content and attachments are emptied, the seq kept. */
export async function tombstoneMessage(db: Db, message: MessageKey): Promise<MessageRow> {
  const [row] = await db
    .update(messages)
    .set({ content: '', attachments: [], deletedAt: new Date() })
    .where(byKey(message))
    .returning()
  return row as MessageRow
}

/** The sender's message with this client_msg_id in the conversation, if there is one. */
export async function messageByClientMsgId(
  db: Db,
  conversationId: string,
  senderId: string,
  clientMsgId: string,
): Promise<MessageRow | undefined> {
  const [row] = await db
    .select()
    .from(messages)
    .where(
      and(
        eq(messages.conversationId, conversationId),
        eq(messages.senderId, senderId),
        eq(messages.clientMsgId, clientMsgId),
      ),
    )
    .limit(1)
  return row
}

/** The message if `userId` is a member of its conversation (no lock); undefined otherwise. */
export async function findVisibleMessage(
  db: Db,
  userId: string,
  messageId: string,
): Promise<MessageRow | undefined> {
  const [row] = await db
    .select({ m: messages })
    .from(messages)
    .innerJoin(members, and(eq(members.conversationId, messages.conversationId), eq(members.userId, userId)))
    .where(eq(messages.id, messageId))
  return row?.m
}
