import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { drizzle } from 'drizzle-orm/postgres-js'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import postgres from 'postgres'
import { MIGRATIONS_DIR } from '../../src/store/db.js'

/**
 * Migrates a PostgreSQL database up to and including the migration tagged `lastTag` (e.g.
 * `0004_member_joined_seq`): the schema a database had before a later migration, to fill with
 * rows and then migrate the rest of the way as an upgrade would.
 */
export async function migrateUpTo(url: string, lastTag: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'migrations-'))
  try {
    cpSync(MIGRATIONS_DIR, dir, { recursive: true })
    const journalFile = join(dir, 'meta/_journal.json')
    const journal = JSON.parse(readFileSync(journalFile, 'utf8')) as { entries: { tag: string }[] }
    const end = journal.entries.findIndex((e) => e.tag === lastTag)
    if (end < 0) throw new Error(`no migration tagged ${lastTag}`)
    journal.entries = journal.entries.slice(0, end + 1)
    writeFileSync(journalFile, JSON.stringify(journal))
    const client = postgres(url, { max: 1, onnotice: () => {} })
    try {
      await migrate(drizzle(client), { migrationsFolder: dir })
    } finally {
      await client.end()
    }
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
