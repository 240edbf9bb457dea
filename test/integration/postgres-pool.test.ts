import { sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { type Database, openDatabase, rowsOf } from '../../src/store/db.js'
import { createTestDatabase } from '../helpers/pg.js'

/**
 * On PostgreSQL every statement with a few parameters is prepared once per connection, inside
 * transactions too: drizzle alone sends them unprepared, and PostgreSQL then parsed and planned
 * the send path's statements at every batch (docs/performance.md, issue 17). One connection, so
 * that `pg_prepared_statements` (per session) shows what the pool's only connection holds.
 */
describe('prepared statements on PostgreSQL', () => {
  let db: Database
  let drop: () => Promise<void>

  beforeAll(async () => {
    const made = await createTestDatabase()
    drop = made.drop
    db = await openDatabase({ databaseUrl: made.url, poolSize: 1 })
  })

  afterAll(async () => {
    await db.close()
    await drop()
  })

  const preparedLike = async (marker: string) =>
    Number(
      rowsOf(
        await db.db.execute(
          sql`select count(*)::int as n from pg_prepared_statements where statement like ${`%${marker}%`} and statement not like '%pg_prepared_statements%'`,
        ),
      )[0]?.n,
    )

  it('prepares a parameterized statement once and reuses it, in and out of transactions', async () => {
    for (let i = 0; i < 3; i++) await db.db.execute(sql`select ${i}::int as marker_outside`)
    for (let i = 0; i < 3; i++) {
      await db.db.transaction(async (tx) => {
        await tx.execute(sql`select ${i}::int as marker_inside`)
      })
    }
    expect(await preparedLike('marker_outside')).toBe(1)
    expect(await preparedLike('marker_inside')).toBe(1)
  })

  it('leaves long parameter lists unprepared (a new text per length would stay prepared forever)', async () => {
    const many = Array.from({ length: 40 }, (_, i) => sql`${i}`)
    await db.db.execute(sql`select array[${sql.join(many, sql`, `)}]::int[] as marker_long`)
    expect(await preparedLike('marker_long')).toBe(0)
  })
})

describe('migrations on a pool of one connection', () => {
  it('complete: the advisory lock and the migrator share the one connection (they used to wait on each other forever)', async () => {
    const { url, drop } = await createTestDatabase()
    const db = await openDatabase({ databaseUrl: url, poolSize: 1 })
    try {
      await db.migrate()
      // Again on the migrated database, as every restart does.
      await db.migrate()
      const [row] = rowsOf(
        await db.db.execute(sql`select count(*)::int as n from drizzle.__drizzle_migrations`),
      )
      expect(Number(row?.n)).toBeGreaterThan(10)
    } finally {
      await db.close()
      await drop()
    }
  }, 60_000)
})
