import postgres from 'postgres'
import { describe, expect, it } from 'vitest'
import { openDatabase } from '../../src/store/db.js'
import { migrateUpTo } from '../helpers/migrations.js'
import { createTestDatabase } from '../helpers/pg.js'

/**
 * The schema can be distributed by conversation (Citus-style: `create_distributed_table(t,
 * 'conversation_id')`) without change: every unique key (primary keys included) and every foreign
 * key of a table holding per-conversation data contains its distribution column, read here from
 * the catalog of a freshly migrated database. A new table, key or constraint that breaks this
 * fails the test, unless it is listed below with the reason it may.
 */

/** The distribution column of each distributed table: conversation_id, or `conversations` by its own id. */
const DISTRIBUTED_BY_ID = { conversations: 'id' } as const

/**
 * Reference tables (copied to every node in Citus): a foreign key to them needs no distribution
 * column. `push_subscriptions` is per user, small and read by user like `users` (a Web Push
 * subscription's coalescing state per conversation points to it).
 */
const REFERENCE_TABLES = ['users', 'push_subscriptions']

/**
 * Keys that may leave the distribution column out, and why. A direct conversation is found by
 * its member pair (`direct_key`), which is a global uniqueness: under Citus it moves to a lookup
 * table distributed by `direct_key` (docs/scaling.md, "Distributing PostgreSQL").
 */
const EXCEPTIONS = ['conversations.conversations_direct_key']

interface Key {
  table: string
  name: string
  kind: 'unique' | 'foreign key' | 'referenced by'
  columns: string[]
  /** For a foreign key: the table it points to. */
  references?: string
}

/** Each table of the public schema that is distributed, with its distribution column. */
async function distributionColumns(sql: postgres.Sql): Promise<Map<string, string>> {
  const rows = await sql<{ table: string }[]>`
    select c.relname as table from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attname = 'conversation_id' and not a.attisdropped
    where n.nspname = 'public' and c.relkind = 'r'`
  const map = new Map<string, string>(rows.map((r) => [r.table, 'conversation_id']))
  for (const [table, column] of Object.entries(DISTRIBUTED_BY_ID)) map.set(table, column)
  return map
}

/** Unique indexes (every primary key and unique constraint has one) and foreign keys, from both ends. */
async function keys(sql: postgres.Sql): Promise<Key[]> {
  const unique = await sql<{ table: string; name: string; columns: string[] }[]>`
    select t.relname as table, i.relname as name,
           array(select a.attname::text from unnest(x.indkey) k join pg_attribute a
                 on a.attrelid = t.oid and a.attnum = k) as columns
    from pg_index x
    join pg_class t on t.oid = x.indrelid
    join pg_class i on i.oid = x.indexrelid
    join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = 'public' and x.indisunique`
  const foreign = await sql<
    { table: string; name: string; columns: string[]; references: string; refColumns: string[] }[]
  >`
    select t.relname as table, c.conname as name, r.relname as references,
           array(select a.attname::text from unnest(c.conkey) k join pg_attribute a
                 on a.attrelid = t.oid and a.attnum = k) as columns,
           array(select a.attname::text from unnest(c.confkey) k join pg_attribute a
                 on a.attrelid = r.oid and a.attnum = k) as "refColumns"
    from pg_constraint c
    join pg_class t on t.oid = c.conrelid
    join pg_class r on r.oid = c.confrelid
    join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = 'public' and c.contype = 'f'`
  return [
    ...unique.map((u): Key => ({ ...u, kind: 'unique' })),
    ...foreign.map(
      (f): Key => ({
        table: f.table,
        name: f.name,
        kind: 'foreign key',
        columns: f.columns,
        references: f.references,
      }),
    ),
    // The other end: a key pointing into a distributed table must name its distribution column there.
    ...foreign.map(
      (f): Key => ({
        table: f.references,
        name: f.name,
        kind: 'referenced by',
        columns: f.refColumns,
        references: f.table,
      }),
    ),
  ]
}

/** `table.key` for each key of a distributed table that leaves its distribution column out. */
async function keysWithoutDistributionColumn(
  url: string,
): Promise<{ tables: string[]; offending: string[] }> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  try {
    const distributed = await distributionColumns(sql)
    const offending = (await keys(sql))
      .filter((k) => distributed.has(k.table))
      .filter((k) => !(k.kind === 'foreign key' && REFERENCE_TABLES.includes(k.references as string)))
      .filter((k) => !k.columns.includes(distributed.get(k.table) as string))
      .map((k) => `${k.table}.${k.name}`)
    return { tables: [...distributed.keys()], offending }
  } finally {
    await sql.end()
  }
}

async function withDatabase<T>(run: (url: string) => Promise<T>): Promise<T> {
  const { url, drop } = await createTestDatabase()
  try {
    return await run(url)
  } finally {
    await drop()
  }
}

describe('a schema ready to be distributed by conversation_id', () => {
  it('every unique key and foreign key of a per-conversation table holds its distribution column', async () => {
    const { tables, offending } = await withDatabase(async (url) => {
      const database = await openDatabase({ databaseUrl: url, poolSize: 2 })
      await database.migrate().finally(() => database.close())
      return keysWithoutDistributionColumn(url)
    })
    // The tables this promise is about: if the catalog query found none, it read the wrong thing.
    expect(tables).toEqual(
      expect.arrayContaining([
        'conversations',
        'conversation_members',
        'messages',
        'conversation_departures',
      ]),
    )
    expect(offending.filter((k) => !EXCEPTIONS.includes(k))).toEqual([])
    // An exception that no longer applies is taken off the list, so the list stays true.
    expect(EXCEPTIONS.filter((e) => !offending.includes(e))).toEqual([])
  })

  it('catches a key without it: the messages primary key before migration 0005 was (id) alone', async () => {
    const { offending } = await withDatabase(async (url) => {
      await migrateUpTo(url, '0004_member_joined_seq')
      return keysWithoutDistributionColumn(url)
    })
    expect(offending.filter((k) => !EXCEPTIONS.includes(k))).toEqual(['messages.messages_pkey'])
  })
})
