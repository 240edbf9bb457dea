import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { describe, expect, it } from 'vitest'
import { MIGRATIONS_DIR } from '../../src/store/db.js'
import { migrateUpTo } from '../helpers/migrations.js'
import { createTestDatabase } from '../helpers/pg.js'

/**
 * 0015_push_and_mute on a database that already holds members: it adds a nullable column and two
 * new tables (nothing existing changes), and `drizzle/rollback/0015_push_and_mute.sql` takes it
 * back out leaving every earlier row as it was, after which it applies again.
 */
const TAG = '0015_push_and_mute'
const PREVIOUS = '0010_message_search_by_conversation'

const U = '00000000-0000-4000-8000-000000000001'
const C = '00000000-0000-4000-8000-0000000000c1'

describe(`migration ${TAG} on PostgreSQL with existing rows`, () => {
  it('applies, rolls back and applies again without touching existing members', async () => {
    const { url, drop } = await createTestDatabase()
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      await migrateUpTo(url, PREVIOUS)
      await sql`insert into users (id, email, password_hash, full_name) values (${U}, 'm@example.com', 'h', 'M')`
      await sql`insert into conversations (id, kind, title, last_seq) values (${C}, 'group', 'g', 0)`
      await sql`insert into conversation_members (conversation_id, user_id, role) values (${C}, ${U}, 'owner')`
      const original =
        await sql`select conversation_id, user_id, role, last_read_seq from conversation_members`

      await migrateUpTo(url, TAG)
      const migrated = await sql`select muted_until from conversation_members`
      expect(migrated.map((r) => r.muted_until)).toEqual([null])
      await sql`update conversation_members set muted_until = now() + interval '1 hour'`
      await sql`insert into push_subscriptions (id, user_id, endpoint, p256dh, auth) values
        ('00000000-0000-4000-8000-0000000000f1', ${U}, 'https://push.example/1', 'k', 'a')`
      await sql`insert into push_coalescing (subscription_id, conversation_id) values ('00000000-0000-4000-8000-0000000000f1', ${C})`

      await sql.begin(async (tx) => {
        await tx.unsafe(readFileSync(join(MIGRATIONS_DIR, `rollback/${TAG}.sql`), 'utf8'))
        await tx`delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)`
      })
      expect([
        ...(await sql`select conversation_id, user_id, role, last_read_seq from conversation_members`),
      ]).toEqual([...original])
      const gone = await sql`select table_name, column_name from information_schema.columns
        where table_schema = 'public' and (column_name = 'muted_until' or table_name like 'push_%')`
      expect([...gone]).toEqual([])

      await migrateUpTo(url, TAG)
      expect((await sql`select count(*)::int as n from push_subscriptions`)[0]?.n).toBe(0)
      expect((await sql`select muted_until from conversation_members`).map((r) => r.muted_until)).toEqual([
        null,
      ])
    } finally {
      await sql.end()
      await drop()
    }
  })
})
