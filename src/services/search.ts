import { invalid, NotFoundError } from '../errors.js'
import { decodeCursor, encodeCursor } from '../lib/cursor.js'
import { isUuid } from '../lib/ids.js'
import type { MessageView } from '../protocol/message.js'
import type { Db } from '../store/db.js'
import { findMember } from '../store/members.js'
import { type SearchCursor, searchMessages } from '../store/search.js'
import { richView } from './views.js'

export const SEARCH_MAX_QUERY = 200
export const SEARCH_MAX_LIMIT = 50
const MAX_WORDS = 10
const SNIPPET_CHARS = 160

export interface SearchHit {
  message: MessageView
  /** Part of the text around the first match, HTML-escaped, matches wrapped in <mark>…</mark>. */
  snippet: string
}

export interface SearchPage {
  items: SearchHit[]
  next_cursor: string | null
}

/** Message search across the caller's conversations (see `store/search.ts` for what matches). */
export class SearchService {
  constructor(
    private readonly db: Db,
    private readonly language: string | undefined,
  ) {}

  async search(
    userId: string,
    q: {
      q: string
      conversation_id?: string | undefined
      cursor?: string | undefined
      limit?: number | undefined
    },
  ): Promise<SearchPage> {
    const conversationId = q.conversation_id
    if (
      conversationId !== undefined &&
      !(isUuid(conversationId) && (await findMember(this.db, conversationId, userId)))
    )
      throw new NotFoundError('conversation')
    const phrase = q.q.trim().toLowerCase()
    if (phrase.length === 0 || phrase.length > SEARCH_MAX_QUERY)
      throw invalid('q', `must hold 1 to ${SEARCH_MAX_QUERY} characters`)
    const words = [...new Set(phrase.match(/[\p{L}\p{N}]+/gu) ?? [])].slice(0, MAX_WORDS)
    const limit = q.limit ?? 20
    const rows = await searchMessages(this.db, userId, {
      words,
      phrase,
      language: this.language,
      conversationId,
      before: q.cursor === undefined ? undefined : searchCursor(q.cursor),
      limit: limit + 1,
    })
    const items = rows.slice(0, limit)
    const last = items.at(-1)
    return {
      items: items.map((r) => ({ message: richView(r), snippet: snippet(r.content, phrase, words) })),
      next_cursor:
        rows.length > limit && last ? encodeCursor({ at: last.createdAt.toISOString(), id: last.id }) : null,
    }
  }
}

function searchCursor(cursor: string): SearchCursor {
  const c = decodeCursor(cursor)
  const at = typeof c.at === 'string' ? new Date(c.at) : undefined
  if (!at || Number.isNaN(at.getTime()) || typeof c.id !== 'string' || !isUuid(c.id))
    throw invalid('cursor', 'is not a valid cursor')
  return { at, id: c.id }
}

const escapeHtml = (s: string) =>
  s.replace(
    /[&<>"']/g,
    (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string,
  )
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')

/**
 * The text around the first match, at most SNIPPET_CHARS, with the whole query and each word
 * prefix marked. Escaped first, so the only markup in it is <mark>.
 */
export function snippet(content: string, phrase: string, words: string[]): string {
  // Whole words first (a word prefix marks up to the end of its word), then the query anywhere.
  const prefixes = words.map((w) => `(?<![\\p{L}\\p{N}])${escapeRegExp(w)}[\\p{L}\\p{N}]*`)
  const pattern = new RegExp([...prefixes, escapeRegExp(phrase)].join('|'), 'giu')
  const first = content.search(pattern)
  const start = Math.max(0, first - SNIPPET_CHARS / 4)
  const cut = content.slice(start, start + SNIPPET_CHARS)
  let body = ''
  let at = 0
  for (const m of cut.matchAll(pattern)) {
    body += `${escapeHtml(cut.slice(at, m.index))}<mark>${escapeHtml(m[0])}</mark>`
    at = m.index + m[0].length
  }
  body += escapeHtml(cut.slice(at))
  return `${start > 0 ? '…' : ''}${body}${start + SNIPPET_CHARS < content.length ? '…' : ''}`
}
