import { invalid } from '../errors.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import type { MessageView } from '../protocol/message.js'
import type { RichMessage } from '../store/message-views.js'
import type * as store from '../store/messages.js'
import { richView } from './views.js'

/** History queries and pages (`MessageService.history`): cursors, bounds and the forward page. */

export interface HistoryQuery {
  before_seq?: number | undefined
  after_seq?: number | undefined
  skip?: number | undefined
  limit?: number | undefined
  cursor?: string | undefined
}

export interface HistoryPage {
  items: MessageView[]
  /** Pass as `cursor` to get the next page in the same direction; null at the end. */
  next_cursor: string | null
  /** Convenience for keyset clients: the seq bounds to use for the next page. */
  next_before_seq: number | null
  next_after_seq: number | null
}

export const HISTORY_DEFAULT_LIMIT = 50
export const HISTORY_MAX_LIMIT = 100

/** Which page a history query asks for; a malformed combination is a 422. */
export function pageBound(q: HistoryQuery): store.PageBound {
  const fromCursor = q.cursor === undefined ? undefined : decodeHistoryCursor(q.cursor)
  const after = fromCursor?.after ?? q.after_seq
  const before = fromCursor?.before ?? q.before_seq
  if (after !== undefined && before !== undefined) {
    throw invalid('after_seq', 'use either after_seq or before_seq')
  }
  if (q.skip !== undefined) {
    if (after !== undefined || before !== undefined)
      throw invalid('skip', 'skip cannot be combined with a seq bound')
    return { kind: 'skip', skip: q.skip }
  }
  return after !== undefined ? { kind: 'after', seq: after } : { kind: 'before', seq: before }
}

export function forwardPage(rows: RichMessage[], limit: number): HistoryPage {
  const items = rows.slice(0, limit)
  const last = items.at(-1)
  const more = rows.length > limit && last !== undefined
  return {
    items: items.map(richView),
    next_cursor: more ? encodeCursor({ after: last.seq }) : null,
    next_before_seq: null,
    next_after_seq: more ? last.seq : null,
  }
}

function decodeHistoryCursor(cursor: string): { after?: number; before?: number } {
  const c = decodeCursor(cursor)
  const ok = (v: unknown) => v === undefined || (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)
  if (!ok(c.after) || !ok(c.before) || (c.after === undefined) === (c.before === undefined)) {
    throw invalid('cursor', 'is not a valid cursor')
  }
  return c.after === undefined ? { before: c.before as number } : { after: c.after as number }
}
