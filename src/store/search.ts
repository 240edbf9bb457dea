import { and, desc, eq, lt, or, type SQL, sql } from 'drizzle-orm'
import type { Db } from './db.js'
import { type RichMessage, selectRich, toRich } from './message-views.js'
import { conversationMembers as members, messages } from './schema.js'
import { languageConfig } from './search-index.js'

/** Where a search page continues: before this message (newest first). */
export interface SearchCursor {
  at: Date
  id: string
}

export interface SearchQuery {
  /** The words of the query (letters and digits only), each matched as a word prefix. */
  words: string[]
  /** The whole query, matched anywhere in the text when it has 3+ characters (pg_trgm). */
  phrase: string
  /** Full-text configuration besides `simple` (SEARCH_LANGUAGE), or undefined for `simple` alone. */
  language: string | undefined
  conversationId: string | undefined
  before: SearchCursor | undefined
  limit: number
}

/** `a:* & b:*` for the words; they are letters and digits only, so nothing in them is tsquery syntax. */
const prefixQuery = (config: string, words: string[]): SQL =>
  sql`to_tsquery(${languageConfig(config)}, ${words.map((w) => `${w}:*`).join(' & ')})`

/**
 * Every word starts a word of the content in the configured language's full-text configuration.
 * The language is a literal, not a parameter: only then does PostgreSQL match the expression to
 * the language's index (store/search-index.ts) in every plan, generic ones included.
 */
export const languageMatch = (language: string, words: string[]): SQL =>
  sql`to_tsvector(${languageConfig(language)}, ${messages.content}) @@ ${prefixQuery(language, words)}`

/** `%…%` for ILIKE with its wildcards taken literally. */
const likePattern = (s: string) => `%${s.replace(/[\\%_]/g, (c) => `\\${c}`)}%`

/**
 * Messages matching the query, newest first, in conversations `userId` is a member of now (a
 * removed member finds nothing there: history answers them 404 too). A message matches when
 * every word starts a word of it (full text, `simple`, plus the configured language), or when it
 * contains the whole query (pg_trgm, 3+ characters). Deleted messages never match (the indexes
 * are partial on `deleted_at is null`).
 */
export async function searchMessages(db: Db, userId: string, q: SearchQuery): Promise<RichMessage[]> {
  // The substring test first: PostgreSQL evaluates OR arguments in order when it rechecks a row
  // (every row pg_trgm finds is rechecked), and ILIKE costs far less than computing to_tsvector.
  const matches: SQL[] = []
  if (q.phrase.length >= 3) matches.push(sql`${messages.content} ilike ${likePattern(q.phrase)}`)
  if (q.words.length > 0) {
    // A message whose words start with the query's words contains each of them (a token of the
    // `simple` configuration is a lower-cased piece of the text, and ILIKE folds case the same
    // way), so with 3+ characters each the same ILIKEs, redundant for the result, let
    // PostgreSQL find the candidates in the (conversation_id, trigram) index, within the
    // searcher's conversations, instead of the whole table's full-text index (20 ms against
    // 87 ms for `w12` on the 1M-message bench; PostgreSQL folds `x or (x and y)` into `x`).
    const narrow = narrowable(q) ? q.words.map((w) => sql`${messages.content} ilike ${likePattern(w)}`) : []
    matches.push(
      and(
        ...narrow,
        sql`to_tsvector('simple'::regconfig, ${messages.content}) @@ ${prefixQuery('simple', q.words)}`,
      ) as SQL,
    )
    if (q.language) matches.push(languageMatch(q.language, q.words))
  }
  if (matches.length === 0) return []
  const before = q.before
    ? or(
        lt(messages.createdAt, q.before.at),
        and(eq(messages.createdAt, q.before.at), lt(messages.id, q.before.id)),
      )
    : undefined
  const where = narrowable(q)
    ? perConversation(userId, q, or(...matches) as SQL, before)
    : and(
        // The caller's conversations as an array, not a join: joined, PostgreSQL repeats the
        // table-wide index scans once per conversation (1.2 s against 90 ms on the bench).
        sql`${messages.conversationId} = any(array(select ${members.conversationId} from ${members} where ${members.userId} = ${userId}))`,
        q.conversationId ? eq(messages.conversationId, q.conversationId) : undefined,
        sql`${messages.deletedAt} is null`,
        or(...matches),
        before,
      )
  const rows = await selectRich(db, userId)
    .where(where)
    .orderBy(desc(messages.createdAt), desc(messages.id))
    .limit(q.limit)
  return rows.map(toRich)
}

/**
 * Every word has 3+ characters and no language is configured: then every match contains each
 * word (see `narrow`), and the (conversation_id, trigram) index finds all candidates.
 */
const narrowable = (q: SearchQuery) =>
  q.language === undefined && (q.words.length > 0 ? q.words : [q.phrase]).every((w) => w.length >= 3)

/**
 * The newest `limit` matches of each of the caller's conversations (found in the
 * (conversation_id, trigram) index, where the conversation narrows the scan), then the newest
 * `limit` of those. As one scan over an array of the conversations, PostgreSQL misjudged the
 * conversation_id condition and mostly scanned every match of the table (7–36 ms per query
 * against 3–9 ms this way on the 1M-message bench). Only for narrowable queries: a word of one
 * or two characters has no trigram, and each conversation would scan the table-wide full-text
 * index (seconds). Inside the subquery, `messages` names the inner table.
 */
function perConversation(userId: string, q: SearchQuery, match: SQL, before: SQL | undefined): SQL {
  const newestFirst = sql`${messages.createdAt} desc, ${messages.id} desc`
  return sql`(${messages.conversationId}, ${messages.id}) in (
    select hit.conversation_id, hit.id
    from ${members} cm cross join lateral (
      select ${messages.conversationId} as conversation_id, ${messages.id} as id, ${messages.createdAt} as created_at
      from ${messages}
      where ${and(
        sql`${messages.conversationId} = cm.conversation_id`,
        sql`${messages.deletedAt} is null`,
        match,
        before,
      )}
      order by ${newestFirst}
      limit ${q.limit}
    ) hit
    where cm.user_id = ${userId}${q.conversationId ? sql` and cm.conversation_id = ${q.conversationId}` : sql``}
    order by hit.created_at desc, hit.id desc
    limit ${q.limit})`
}
