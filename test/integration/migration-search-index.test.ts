import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { describe, expect, it } from 'vitest'
import { MIGRATIONS_DIR } from '../../src/store/db.js'
import { migrateUpTo } from '../helpers/migrations.js'
import { createTestDatabase } from '../helpers/pg.js'

/**
 * 0017_drop_plain_trigram_index on a database that already holds messages: the trigram index of
 * `content` alone goes, a substring search with no conversation still finds its rows through the
 * (conversation_id, trigram) index, and `drizzle/rollback/0017_drop_plain_trigram_index.sql`
 * builds the index again, after which the migration applies again.
 */
const TAG = '0017_drop_plain_trigram_index'
const C = '00000000-0000-4000-8000-0000000000c1'
const U = '00000000-0000-4000-8000-000000000001'

describe(`migration ${TAG} on PostgreSQL with existing rows`, () => {
  it('drops the index, a substring search still uses an index, and it rolls back and applies again', async () => {
    const { url, drop } = await createTestDatabase()
    const sql = postgres(url, { max: 1, onnotice: () => {} })
    const indexes = async () =>
      (
        await sql`select indexname from pg_indexes where tablename = 'messages' and indexname like '%trgm%' order by 1`
      ).map((r) => r.indexname as string)
    const substring = async () => {
      // No sequential scan: 3,000 rows are still few enough to read whole.
      const [rows, plan] = await sql.begin(async (tx) => {
        await tx`set local enable_seqscan = off`
        const q = `select seq from messages where deleted_at is null and content ilike '%ldfis%' order by seq`
        return [await tx.unsafe(q), await tx.unsafe(`explain ${q}`)] as const
      })
      return { seqs: rows.map((r) => Number(r.seq)), plan: plan.map((r) => r['QUERY PLAN']).join('\n') }
    }
    try {
      await migrateUpTo(url, '0016_message_changes')
      await sql`insert into users (id, email, password_hash, full_name) values (${U}, 'm@example.com', 'h', 'M')`
      await sql`insert into conversations (id, kind, title, last_seq) values (${C}, 'group', 'g', 3003)`
      await sql`insert into messages (id, conversation_id, seq, sender_id, content) values
        ('00000000-0000-4000-8000-0000000000a1', ${C}, 1, ${U}, 'goldfish'),
        ('00000000-0000-4000-8000-0000000000a2', ${C}, 2, ${U}, 'cat'),
        ('00000000-0000-4000-8000-0000000000a3', ${C}, 3, ${U}, 'GOLDFISH bowl')`
      // Enough other rows that the selective trigram scan is the cheapest plan, as on a real table
      // (vacuum: the GIN indexes hold the new rows in their pending lists until then).
      await sql`insert into messages (id, conversation_id, seq, sender_id, content)
        select gen_random_uuid(), ${C}, 3 + n, ${U}, 'message number ' || n from generate_series(1, 3000) n`
      await sql`vacuum analyze messages`
      const original = [...(await sql`select id, seq, content from messages order by seq`)]
      expect(await indexes()).toEqual(['messages_search_conv_trgm_idx', 'messages_search_trgm_idx'])

      await migrateUpTo(url, TAG)
      expect(await indexes()).toEqual(['messages_search_conv_trgm_idx'])
      const after = await substring()
      expect(after.seqs).toEqual([1, 3])
      expect(after.plan).toContain('messages_search_conv_trgm_idx')

      await sql.begin(async (tx) => {
        await tx.unsafe(readFileSync(join(MIGRATIONS_DIR, `rollback/${TAG}.sql`), 'utf8'))
        await tx`delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)`
      })
      expect(await indexes()).toEqual(['messages_search_conv_trgm_idx', 'messages_search_trgm_idx'])
      expect([...(await sql`select id, seq, content from messages order by seq`)]).toEqual(original)

      await migrateUpTo(url, TAG)
      expect(await indexes()).toEqual(['messages_search_conv_trgm_idx'])
      expect([...(await sql`select id, seq, content from messages order by seq`)]).toEqual(original)
    } finally {
      await sql.end()
      await drop()
    }
  })
})
