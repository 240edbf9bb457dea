import { sql, TransactionRollbackError } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { Database } from '../../src/store/db.js'
import { rowsOf } from '../../src/store/db.js'
import { messages } from '../../src/store/schema.js'
import { languageMatch } from '../../src/store/search.js'
import { ensureLanguageIndex, languageIndexName } from '../../src/store/search-index.js'
import { DRIVERS, openTestDatabase } from '../helpers/app.js'

/**
 * SEARCH_LANGUAGE other than `simple` gets its own full-text index at startup (store/search-index.ts),
 * and the search's language condition uses it: EXPLAIN shows the index once it exists, and not before.
 */
describe.each(DRIVERS)('the SEARCH_LANGUAGE index on %s', (driver) => {
  let database: Database
  beforeAll(async () => {
    database = await openTestDatabase(driver)
  })
  afterAll(async () => database?.close())

  /**
   * The plan of the search's language condition, sequential scans discouraged (the table is tiny).
   * Only the full-text indexes may compete: on an empty table the planner would rather walk the
   * retention job's partial index of live messages, so it is dropped inside the transaction, which
   * is then rolled back.
   */
  const plan = async (language: string) => {
    let text = ''
    await database.db
      .transaction(async (tx) => {
        await tx.execute(sql`set local enable_seqscan = off`)
        await tx.execute(sql`drop index if exists messages_live_created_idx`)
        const rows = rowsOf(
          await tx.execute(
            sql`explain (costs off) select ${messages.id} from ${messages}
            where ${messages.deletedAt} is null and ${languageMatch(language, ['runn', 'dog'])}`,
          ),
        )
        text = rows.map((r) => String(Object.values(r)[0])).join('\n')
        tx.rollback()
      })
      .catch((err: unknown) => {
        if (!(err instanceof TransactionRollbackError)) throw err
      })
    return text
  }

  it('is created when missing, then found; the language condition uses it', async () => {
    const name = languageIndexName('english')
    // With sequential scans off, PostgreSQL may still walk any partial index just to read rows: what
    // shows that the condition uses the index is the condition under that index's scan.
    const usesIndex = (p: string, language: string) =>
      new RegExp(`Index Scan on ${name}\\s+Index Cond: \\(to_tsvector\\('${language}'`).test(p)
    expect(usesIndex(await plan('english'), 'english')).toBe(false)
    expect(await ensureLanguageIndex(database.db, 'english', driver === 'postgres')).toBe('created')
    expect(await ensureLanguageIndex(database.db, 'english', driver === 'postgres')).toBe('present')
    expect(usesIndex(await plan('english'), 'english')).toBe(true)
    // Another language's condition does not match this index's expression.
    expect(usesIndex(await plan('german'), 'german')).toBe(false)
  })

  it('refuses anything but a configuration name', async () => {
    await expect(
      ensureLanguageIndex(database.db, "english'; drop table messages; --", false),
    ).rejects.toThrow(/not a text search configuration/)
  })

  it('is created once when instances starting together ask for it at the same moment', async () => {
    // Separate instances (hosts, or WORKERS) on one database: each checks, finds it missing, creates it.
    const asks = await Promise.all(
      Array.from({ length: 4 }, () => ensureLanguageIndex(database.db, 'french', driver === 'postgres')),
    )
    expect(asks.filter((a) => a === 'created').length).toBeGreaterThanOrEqual(1)
    expect(asks.every((a) => a === 'created' || a === 'present')).toBe(true)
    expect(await ensureLanguageIndex(database.db, 'french', driver === 'postgres')).toBe('present')
  })
})
