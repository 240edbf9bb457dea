import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { drizzle } from 'drizzle-orm/postgres-js'
import { migrate } from 'drizzle-orm/postgres-js/migrator'
import postgres from 'postgres'
import { afterAll, describe, expect, it } from 'vitest'
import { MIGRATIONS_DIR } from '../../src/store/db.js'
import { createTestDatabase } from '../helpers/pg.js'

/**
 * 0008_rich_messages on a database that already holds messages: it adds columns with defaults and
 * new tables (nothing existing changes), and `drizzle/rollback/0008_rich_messages.sql` takes it
 * back out leaving every earlier row as it was, after which it applies again. The later ones
 * (0009 onwards) are rolled back first, on the same rows.
 */
const TAG = '0008_rich_messages'
/**
 * Migrations after it, newest first, each with its rollback script: read from the journal, so
 * that a new migration is rolled back here too (a list written out missed 0017, and the rollbacks
 * then deleted the wrong journal rows).
 */
const LATER = (
  JSON.parse(readFileSync(join(MIGRATIONS_DIR, 'meta/_journal.json'), 'utf8')) as {
    entries: { tag: string }[]
  }
).entries
  .map((e) => e.tag)
  .filter((tag) => tag > TAG)
  .reverse()

/** The migrations folder as it was before 0008 (journal cut just before it). */
function foldersBefore(tag: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'migrations-'))
  cpSync(MIGRATIONS_DIR, dir, { recursive: true })
  const journalPath = join(dir, 'meta/_journal.json')
  const journal = JSON.parse(readFileSync(journalPath, 'utf8')) as { entries: { tag: string }[] }
  const at = journal.entries.findIndex((e) => e.tag === tag)
  journal.entries = journal.entries.slice(0, at)
  writeFileSync(journalPath, JSON.stringify(journal))
  return dir
}

describe(`migration ${TAG} on PostgreSQL with existing rows`, () => {
  const before = foldersBefore(TAG)
  afterAll(() => rmSync(before, { recursive: true, force: true }))

  it('applies, rolls back and applies again without touching existing messages', async () => {
    const { url, drop } = await createTestDatabase()
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      await migrate(drizzle(sql), { migrationsFolder: before })
      await sql`insert into users (id, email, password_hash, full_name) values ('00000000-0000-4000-8000-000000000001', 'm@example.com', 'h', 'M')`
      await sql`insert into conversations (id, kind, title, last_seq) values ('00000000-0000-4000-8000-0000000000c1', 'group', 'g', 2)`
      await sql`insert into messages (id, conversation_id, seq, sender_id, content) values
        ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000c1', 1, '00000000-0000-4000-8000-000000000001', 'one'),
        ('00000000-0000-4000-8000-0000000000a2', '00000000-0000-4000-8000-0000000000c1', 2, '00000000-0000-4000-8000-000000000001', 'two')`
      const original = await sql`select id, seq, content from messages order by seq`

      await migrate(drizzle(sql), { migrationsFolder: MIGRATIONS_DIR })
      const migrated =
        await sql`select id, seq, content, reply_to_id, mentions::text as mentions, mentions_all, reactions_rev from messages order by seq`
      expect(migrated.map((r) => ({ id: r.id, seq: r.seq, content: r.content }))).toEqual([...original])
      expect(
        migrated.every(
          (r) => r.reply_to_id === null && r.mentions === '{}' && !r.mentions_all && r.reactions_rev === 0,
        ),
      ).toBe(true)
      // 0011: existing conversations start their change counter at 0, and no message has a change yet.
      expect((await sql`select change_seq from conversations`).map((r) => Number(r.change_seq))).toEqual([0])
      expect((await sql`select count(*)::int as n from message_changes`)[0]?.n).toBe(0)
      await sql`insert into message_changes (conversation_id, message_id, change_seq) values ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000a2', 1)`
      await sql`insert into message_reactions (conversation_id, message_id, user_id, emoji) values ('00000000-0000-4000-8000-0000000000c1', '00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-000000000001', ':ok:')`

      // Later migrations first, newest first, as an operator would take them back.
      for (const tag of [...LATER, TAG]) {
        await sql.begin(async (tx) => {
          await tx.unsafe(readFileSync(join(MIGRATIONS_DIR, `rollback/${tag}.sql`), 'utf8'))
          await tx`delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)`
        })
      }
      expect([...(await sql`select id, seq, content from messages order by seq`)]).toEqual([...original])
      const columns =
        await sql`select column_name from information_schema.columns where table_name = 'messages' and column_name = 'reply_to_id'`
      expect(columns).toHaveLength(0)

      await migrate(drizzle(sql), { migrationsFolder: MIGRATIONS_DIR })
      expect((await sql`select count(*)::int as n from message_reactions`)[0]?.n).toBe(0)
      expect([...(await sql`select id, seq, content from messages order by seq`)]).toEqual([...original])
    } finally {
      await sql.end()
      await drop()
    }
  })
})
