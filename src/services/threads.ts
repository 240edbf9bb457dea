import { invalid, NotFoundError } from '../errors.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import { isUuid } from '../lib/ids.js'
import type { MessageView } from '../protocol/message.js'
import type { Db } from '../store/db.js'
import { findVisibleMessage } from '../store/messages.js'
import { mentionsPage, repliesPage } from '../store/rich-pages.js'
import { richView } from './views.js'

export interface MessagePage {
  items: MessageView[]
  next_cursor: string | null
}

/**
 * Reading threads and mentions. A thread is the replies to one message (a reply to a reply starts
 * that reply's own thread); both reads show only what a member of the conversation may see now.
 */
export class ThreadService {
  constructor(private readonly db: Db) {}

  /** Replies to a message, oldest first; `cursor` continues (same opaque style as history). */
  async replies(userId: string, messageId: string, limit: number, cursor?: string): Promise<MessagePage> {
    const root = isUuid(messageId) ? await findVisibleMessage(this.db, userId, messageId) : undefined
    if (!root) throw new NotFoundError('message')
    const after = cursor === undefined ? 0 : afterOf(cursor)
    const rows = await repliesPage(this.db, userId, root.conversationId, root.id, after, limit + 1)
    const items = rows.slice(0, limit)
    const last = items.at(-1)
    return {
      items: items.map(richView),
      next_cursor: rows.length > limit && last ? encodeCursor({ after: last.seq }) : null,
    }
  }

  /** Messages that mention the caller, newest first, in conversations they are a member of. */
  async mentions(userId: string, limit: number, cursor?: string): Promise<MessagePage> {
    const before = cursor === undefined ? undefined : mentionCursor(cursor)
    const rows = await mentionsPage(this.db, userId, before, limit + 1)
    const items = rows.slice(0, limit)
    const last = items.at(-1)
    return {
      items: items.map(richView),
      next_cursor:
        rows.length > limit && last ? encodeCursor({ at: last.createdAt.toISOString(), id: last.id }) : null,
    }
  }
}

function afterOf(cursor: string): number {
  const c = decodeCursor(cursor)
  if (typeof c.after !== 'number' || !Number.isSafeInteger(c.after) || c.after < 0)
    throw invalid('cursor', 'is not a valid cursor')
  return c.after
}

function mentionCursor(cursor: string) {
  const c = decodeCursor(cursor)
  const at = typeof c.at === 'string' ? new Date(c.at) : undefined
  if (!at || Number.isNaN(at.getTime()) || typeof c.id !== 'string' || !isUuid(c.id))
    throw invalid('cursor', 'is not a valid cursor')
  return { at, messageId: c.id }
}
