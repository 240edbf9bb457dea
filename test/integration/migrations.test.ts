import { randomUUID } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { eq, sql } from 'drizzle-orm'
import { integer, pgSchema, text } from 'drizzle-orm/pg-core'
import { afterAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/config.js'
import { createLogger } from '../../src/observability/logger.js'
import { type Database, MIGRATIONS_DIR, openDatabase, rowsOf } from '../../src/store/db.js'
import { startRuntime } from '../../src/wiring.js'
import { migrateUpTo } from '../helpers/migrations.js'
import { createTestDatabase } from '../helpers/pg.js'

// Catalog tables, read through the query builder so both drivers return the same shape.
const appliedMigrations = pgSchema('drizzle').table('__drizzle_migrations', {
  id: integer('id'),
  hash: text('hash'),
})
const catalogTables = pgSchema('information_schema').table('tables', {
  schema: text('table_schema'),
  name: text('table_name'),
})

const EXPECTED_TABLES = ['users', 'refresh_tokens', 'conversations', 'conversation_members', 'messages']
const journal = JSON.parse(readFileSync(join(MIGRATIONS_DIR, 'meta/_journal.json'), 'utf8')) as {
  entries: unknown[]
}

const publicTables = async (database: Database) =>
  (
    await database.db
      .select({ name: catalogTables.name })
      .from(catalogTables)
      .where(eq(catalogTables.schema, 'public'))
  ).map((r) => r.name)

const migrationRows = async (database: Database) =>
  database.db.select().from(appliedMigrations).orderBy(appliedMigrations.id)

/** Migrates an empty database, then migrates again twice (same handle, then a reopened one). */
async function checkMigrations(open: () => Promise<Database>) {
  const first = await open()
  try {
    expect(await publicTables(first)).toEqual([])
    await first.migrate()
    expect(await publicTables(first)).toEqual(expect.arrayContaining(EXPECTED_TABLES))
    const applied = await migrationRows(first)
    expect(applied).toHaveLength(journal.entries.length)
    await first.migrate()
    expect(await migrationRows(first)).toEqual(applied)
    await first.close()
    const restarted = await open()
    try {
      await restarted.migrate()
      expect(await migrationRows(restarted)).toEqual(applied)
    } finally {
      await restarted.close()
    }
  } catch (err) {
    await first.close().catch(() => {})
    throw err
  }
}

describe('migrations on PostgreSQL', () => {
  it('apply to an empty database, and a restart applies nothing', async () => {
    const { url, drop } = await createTestDatabase()
    try {
      await checkMigrations(() => openDatabase({ databaseUrl: url, poolSize: 2 }))
    } finally {
      await drop()
    }
  })
})

describe('an upgrade of a database with rows', () => {
  it('0005 re-keys messages by (conversation_id, id) and keeps every row and its links', async () => {
    const { url, drop } = await createTestDatabase()
    const database = await openDatabase({ databaseUrl: url, poolSize: 2 })
    try {
      await migrateUpTo(url, '0004_member_joined_seq')
      // Rows as the previous schema held them, written in plain SQL (today's code expects the new keys).
      const [u, c] = [randomUUID(), randomUUID()]
      const run = (q: ReturnType<typeof sql>) => database.db.execute(q)
      await run(sql`insert into users (id, email, password_hash, full_name)
                    values (${u}, ${`${u}@example.com`}, 'x', 'Old')`)
      await run(sql`insert into conversations (id, kind, title, last_seq) values (${c}, 'group', 'old', 3)`)
      await run(
        sql`insert into conversation_members (conversation_id, user_id, role) values (${c}, ${u}, 'owner')`,
      )
      await run(sql`insert into messages (id, conversation_id, seq, sender_id, content, client_msg_id)
                    select gen_random_uuid(), ${c}, s, ${u}, 'm' || s, 'k' || s from generate_series(1, 3) s`)
      const before = rowsOf(await database.db.execute(sql`select * from messages order by seq`))
      await database.migrate()
      const after = rowsOf(await database.db.execute(sql`select * from messages order by seq`))
      // Every old column keeps its value (later migrations may add columns with defaults).
      expect(after).toHaveLength(before.length)
      expect(after).toMatchObject(before)
      const key = rowsOf(
        await database.db.execute(sql`
          select array(select a.attname::text from unnest(x.indkey) with ordinality as k(n, i)
                       join pg_attribute a on a.attrelid = x.indrelid and a.attnum = k.n order by k.i) as columns
          from pg_index x where x.indrelid = 'messages'::regclass and x.indisprimary`),
      )
      expect(key).toEqual([{ columns: ['conversation_id', 'id'] }])
      // The idempotency key and the cascade from the conversation still hold.
      await expect(
        database.db.execute(sql`
          insert into messages (id, conversation_id, seq, sender_id, content, client_msg_id)
          values (gen_random_uuid(), ${c}, 4, ${u}, 'again', 'k1')`),
      ).rejects.toThrow()
      await database.db.execute(sql`delete from conversations where id = ${c}`)
      expect(rowsOf(await database.db.execute(sql`select id from messages`))).toEqual([])
    } finally {
      await database.close()
      await drop()
    }
  })
})

// PGlite runs initdb for a fresh data directory: 4–11 s on this machine. Both tests share one
// directory to pay that once; the second still passes on its own (it initialises the directory).
describe('the embedded default (PGlite in DATA_DIR)', { timeout: 120_000 }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'chat-data-'))
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

  it('migrations apply to an empty data directory, and a restart applies nothing', async () => {
    await checkMigrations(() => openDatabase({ dataDir }))
  })

  it('keeps users (and the generated JWT secret) across a restart', async () => {
    // No DATABASE_URL and no JWT_SECRET: exactly what `npm start` on a fresh machine runs with.
    const env = { NODE_ENV: 'development', DATA_DIR: dataDir, LOG_LEVEL: 'silent' }
    const logger = createLogger('silent')
    const credentials = { email: `keeper.${Date.now()}@example.com`, password: 'Sup3r-secret!' }

    const before = await startRuntime(loadConfig(env), logger)
    let accessToken: string
    try {
      const res = await before.app.inject({
        method: 'POST',
        url: '/api/v1/auth/register',
        payload: { ...credentials, full_name: 'Keeper' },
      })
      expect(res.statusCode, res.body).toBe(201)
      accessToken = res.json().access_token
    } finally {
      await before.stop()
    }

    // A restart parses the environment again: the secret must come back from DATA_DIR.
    const after = await startRuntime(loadConfig(env), logger)
    try {
      const login = await after.app.inject({
        method: 'POST',
        url: '/api/v1/auth/login',
        payload: credentials,
      })
      expect(login.statusCode, login.body).toBe(200)
      const me = await after.app.inject({
        url: '/api/v1/auth/me',
        headers: { authorization: `Bearer ${accessToken}` },
      })
      expect(me.statusCode, me.body).toBe(200)
      expect(me.json()).toMatchObject({ email: credentials.email, full_name: 'Keeper' })
    } finally {
      await after.stop()
    }
  })
})
