import { sql } from 'drizzle-orm'
import { type Db, rowsOf } from './db.js'

/**
 * The full-text index of the SEARCH_LANGUAGE configuration. The migrations create the `simple`
 * one; the configured language's is made at startup (`wiring.ts`) when missing, since which
 * language a deployment uses is configuration, not schema. The search query names the language
 * as a literal (`languageConfig`), so PostgreSQL matches it to this index's expression.
 */
export const languageIndexName = (language: string): string => `messages_search_${language}_idx`

/** A configuration name as SQL text: only names of PostgreSQL's built-in configurations pass. */
export function languageConfig(language: string) {
  if (!/^[a-z]{2,20}$/.test(language)) throw new Error(`not a text search configuration: ${language}`)
  return sql.raw(`'${language}'::regconfig`)
}

/**
 * Creates the index for `language` unless it exists. `concurrently` (PostgreSQL): built without
 * blocking writes, which takes longer on a large table; PGlite has one connection anyway. Returns
 * `invalid` when an index of that name exists but is unusable (an interrupted concurrent build:
 * drop it by hand, docs/architecture.md "Search").
 */
export async function ensureLanguageIndex(
  db: Db,
  language: string,
  concurrently: boolean,
): Promise<'present' | 'created' | 'invalid'> {
  const config = languageConfig(language)
  const name = languageIndexName(language)
  const [row] = rowsOf(
    await db.execute(sql`
      select i.indisvalid as valid from pg_class c join pg_index i on i.indexrelid = c.oid
      where c.relname = ${name}`),
  )
  if (row) return row.valid === true ? 'present' : 'invalid'
  await db.execute(
    sql`create index ${sql.raw(concurrently ? 'concurrently ' : '')}if not exists ${sql.identifier(name)}
      on messages using gin (to_tsvector(${config}, content)) where deleted_at is null`,
  )
  return 'created'
}
