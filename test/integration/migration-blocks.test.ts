import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { describe, expect, it } from 'vitest'
import { MIGRATIONS_DIR } from '../../src/store/db.js'
import { migrateUpTo } from '../helpers/migrations.js'
import { createTestDatabase } from '../helpers/pg.js'

/**
 * 0011_blocks_export on a database that already holds users, conversations and messages: it adds
 * a table, a column with a default (existing conversations stay open) and an index; nothing
 * existing changes, and `drizzle/rollback/0011_blocks_export.sql` takes it back out.
 */
const TAG = '0011_blocks_export'
const BEFORE = '0010_message_search_by_conversation'

describe(`migration ${TAG} on PostgreSQL with existing rows`, () => {
  it('applies, rolls back and applies again without touching existing rows', async () => {
    const { url, drop } = await createTestDatabase()
    await migrateUpTo(url, BEFORE)
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      await sql`insert into users (id, email, password_hash, full_name) values
        ('00000000-0000-4000-8000-000000000001', 'a@example.com', 'h', 'A'),
        ('00000000-0000-4000-8000-000000000002', 'b@example.com', 'h', 'B')`
      await sql`insert into conversations (id, kind, direct_key, last_seq) values
        ('00000000-0000-4000-8000-0000000000c1', 'direct', '00000000-0000-4000-8000-000000000001:00000000-0000-4000-8000-000000000002', 1)`
      await sql`insert into messages (id, conversation_id, seq, sender_id, content) values
        ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000c1', 1, '00000000-0000-4000-8000-000000000001', 'one')`
      const original = await sql`select id, seq, content, sender_id from messages order by seq`

      await migrateUpTo(url, TAG)
      expect([...(await sql`select blocked from conversations`)]).toEqual([{ blocked: false }])
      await sql`insert into user_blocks (blocker_id, blocked_id) values ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000002')`
      // Nobody blocks themselves.
      await expect(
        sql`insert into user_blocks (blocker_id, blocked_id) values ('00000000-0000-4000-8000-000000000001', '00000000-0000-4000-8000-000000000001')`,
      ).rejects.toThrow(/user_blocks_not_self/)

      await sql.begin(async (tx) => {
        await tx.unsafe(readFileSync(join(MIGRATIONS_DIR, `rollback/${TAG}.sql`), 'utf8'))
        await tx`delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)`
      })
      expect([...(await sql`select id, seq, content, sender_id from messages order by seq`)]).toEqual([
        ...original,
      ])
      expect(
        await sql`select 1 from information_schema.columns where table_name = 'conversations' and column_name = 'blocked'`,
      ).toHaveLength(0)
      expect(
        await sql`select 1 from information_schema.tables where table_name = 'user_blocks'`,
      ).toHaveLength(0)
      expect(await sql`select 1 from pg_indexes where indexname = 'messages_sender_idx'`).toHaveLength(0)

      await migrateUpTo(url, TAG)
      expect((await sql`select count(*)::int as n from user_blocks`)[0]?.n).toBe(0)
      expect([...(await sql`select id, seq, content, sender_id from messages order by seq`)]).toEqual([
        ...original,
      ])
    } finally {
      await sql.end()
      await drop()
    }
  })
})
