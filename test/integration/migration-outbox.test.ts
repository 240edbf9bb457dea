import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { describe, expect, it } from 'vitest'
import { MIGRATIONS_DIR } from '../../src/store/db.js'
import { migrateUpTo } from '../helpers/migrations.js'
import { createTestDatabase } from '../helpers/pg.js'

/**
 * 0014_outbox_webhooks on a database that already holds messages: it only adds tables, and
 * `drizzle/rollback/0014_outbox_webhooks.sql` takes them out (with their rows) leaving every
 * earlier row as it was, after which it applies again.
 */
const TAG = '0014_outbox_webhooks'

describe('migration 0014_outbox_webhooks on PostgreSQL with existing rows', () => {
  it('applies, rolls back with rows in its tables, and applies again without touching messages', async () => {
    const { url, drop } = await createTestDatabase()
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      await migrateUpTo(url, '0010_message_search_by_conversation')
      await sql`insert into users (id, email, password_hash, full_name) values ('00000000-0000-4000-8000-000000000001', 'm@example.com', 'h', 'M')`
      await sql`insert into conversations (id, kind, title, last_seq) values ('00000000-0000-4000-8000-0000000000c1', 'group', 'g', 1)`
      await sql`insert into messages (id, conversation_id, seq, sender_id, content) values
        ('00000000-0000-4000-8000-0000000000a1', '00000000-0000-4000-8000-0000000000c1', 1, '00000000-0000-4000-8000-000000000001', 'one')`
      const original = [...(await sql`select id, seq, content from messages order by seq`)]

      await migrateUpTo(url, TAG)
      await sql`insert into outbox_events (id, type, data, occurred_at) values ('00000000-0000-4000-8000-0000000000e1', 'user.deleted', '{}', now())`
      await sql`insert into outbox_deliveries (event_id, channel, target, next_attempt_at, created_at) values ('00000000-0000-4000-8000-0000000000e1', 'webhook', 'env', now(), now())`
      await sql`insert into webhook_endpoints (id, url, secret) values ('00000000-0000-4000-8000-0000000000f1', 'https://h.example/', 'whsec_x')`

      await sql.begin(async (tx) => {
        await tx.unsafe(readFileSync(join(MIGRATIONS_DIR, 'rollback/0014_outbox_webhooks.sql'), 'utf8'))
        await tx`delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)`
      })
      const tables =
        await sql`select table_name from information_schema.tables where table_name in ('outbox_events', 'outbox_deliveries', 'webhook_endpoints')`
      expect(tables).toHaveLength(0)
      expect([...(await sql`select id, seq, content from messages order by seq`)]).toEqual(original)

      await migrateUpTo(url, TAG)
      expect((await sql`select count(*)::int as n from outbox_events`)[0]?.n).toBe(0)
      expect([...(await sql`select id, seq, content from messages order by seq`)]).toEqual(original)
    } finally {
      await sql.end()
      await drop()
    }
  })
})
