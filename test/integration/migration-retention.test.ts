import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { describe, expect, it } from 'vitest'
import { MIGRATIONS_DIR } from '../../src/store/db.js'
import { migrateUpTo } from '../helpers/migrations.js'
import { createTestDatabase } from '../helpers/pg.js'

/**
 * 0013_retention on a database that already holds conversations and messages: it adds a nullable
 * column and two indexes (nothing existing changes), and `drizzle/rollback/0013_retention.sql`
 * takes them back out leaving every row as it was, after which it applies again.
 */
const TAG = '0013_retention'

describe(`migration ${TAG} on PostgreSQL with existing rows`, () => {
  it('applies, rolls back and applies again without touching existing rows', async () => {
    const { url, drop } = await createTestDatabase()
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      await migrateUpTo(url, '0010_message_search_by_conversation')
      await sql`insert into users (id, email, password_hash, full_name) values ('00000000-0000-4000-8000-000000000001', 'r@example.com', 'h', 'R')`
      await sql`insert into conversations (id, kind, title, last_seq) values ('00000000-0000-4000-8000-0000000000c1', 'group', 'g', 2)`
      await sql`insert into messages (id, conversation_id, seq, sender_id, content, deleted_at) values
        ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000c1', 1, '00000000-0000-4000-8000-000000000001', 'one', null),
        ('00000000-0000-4000-8000-0000000000a2', '00000000-0000-4000-8000-0000000000c1', 2, '00000000-0000-4000-8000-000000000001', '', now())`
      const messagesNow = () =>
        sql`select id, seq, content, created_at, deleted_at from messages order by seq`
      const conversationsNow = () => sql`select id, kind, title, last_seq from conversations order by id`
      const [messagesBefore, conversationsBefore] = [
        [...(await messagesNow())],
        [...(await conversationsNow())],
      ]

      await migrateUpTo(url, TAG)
      expect([...(await messagesNow())]).toEqual(messagesBefore)
      expect((await sql`select retention_days from conversations`).map((r) => r.retention_days)).toEqual([
        null,
      ])
      await expect(sql`update conversations set retention_days = 0`).rejects.toThrow(/retention_days_check/)
      await sql`update conversations set retention_days = 30`
      const indexes = async () =>
        (
          await sql`select indexname from pg_indexes where indexname in ('messages_live_created_idx', 'conversations_retention_idx') order by 1`
        ).map((r) => r.indexname)
      expect(await indexes()).toEqual(['conversations_retention_idx', 'messages_live_created_idx'])

      await sql.begin(async (tx) => {
        await tx.unsafe(readFileSync(join(MIGRATIONS_DIR, `rollback/${TAG}.sql`), 'utf8'))
        await tx`delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)`
      })
      expect(await indexes()).toEqual([])
      const columns =
        await sql`select column_name from information_schema.columns where table_name = 'conversations' and column_name = 'retention_days'`
      expect(columns).toHaveLength(0)
      expect([...(await messagesNow())]).toEqual(messagesBefore)
      expect([...(await conversationsNow())]).toEqual(conversationsBefore)

      await migrateUpTo(url, TAG)
      expect(await indexes()).toHaveLength(2)
      expect([...(await messagesNow())]).toEqual(messagesBefore)
    } finally {
      await sql.end()
      await drop()
    }
  })
})
