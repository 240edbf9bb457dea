import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { describe, expect, it } from 'vitest'
import { MIGRATIONS_DIR } from '../../src/store/db.js'
import { migrateUpTo } from '../helpers/migrations.js'
import { createTestDatabase } from '../helpers/pg.js'

/**
 * 0012_moderation on a database that already holds accounts: superusers become operators, the
 * others users; the audit log refuses changes; `drizzle/rollback/0012_moderation.sql` takes it
 * back out (operators are superusers again) and it applies again.
 */
const TAG = '0012_moderation'
const SUPER = '00000000-0000-4000-8000-000000000001'
const PLAIN = '00000000-0000-4000-8000-000000000002'

describe(`migration ${TAG} on PostgreSQL with existing rows`, () => {
  it('maps is_superuser to the operator role, rolls back to it, and applies again', async () => {
    const { url, drop } = await createTestDatabase()
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    try {
      await migrateUpTo(url, '0010_message_search_by_conversation')
      await sql`insert into users (id, email, password_hash, full_name, is_superuser) values
        (${SUPER}, 's@example.com', 'h', 'S', true), (${PLAIN}, 'p@example.com', 'h', 'P', false)`

      await migrateUpTo(url, TAG)
      const roles = await sql`select id, role, suspended_at from users order by id`
      expect(roles.map((r) => [r.id, r.role, r.suspended_at])).toEqual([
        [SUPER, 'operator', null],
        [PLAIN, 'user', null],
      ])
      await expect(sql`update users set role = 'root' where id = ${PLAIN}`).rejects.toThrow(
        /users_role_check/,
      )
      await sql`insert into audit_log (id, actor_id, action, target_type, target_id) values
        (gen_random_uuid(), ${SUPER}, 'user.suspend', 'user', ${PLAIN})`
      await expect(sql`update audit_log set action = 'x'`).rejects.toThrow(/append-only/)
      await expect(sql`delete from audit_log`).rejects.toThrow(/append-only/)
      await expect(sql`truncate audit_log`).rejects.toThrow(/append-only/)

      await sql.begin(async (tx) => {
        await tx.unsafe(readFileSync(join(MIGRATIONS_DIR, `rollback/${TAG}.sql`), 'utf8'))
        await tx`delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)`
      })
      const back = await sql`select id, is_superuser from users order by id`
      expect(back.map((r) => [r.id, r.is_superuser])).toEqual([
        [SUPER, true],
        [PLAIN, false],
      ])
      const tables =
        await sql`select table_name from information_schema.tables where table_name in ('audit_log', 'message_reports', 'conversation_bans')`
      expect(tables).toHaveLength(0)

      await migrateUpTo(url, TAG)
      const again = await sql`select id, role from users order by id`
      expect(again.map((r) => r.role)).toEqual(['operator', 'user'])
      expect((await sql`select count(*)::int as n from audit_log`)[0]?.n).toBe(0)
    } finally {
      await sql.end()
      await drop()
    }
  })
})
