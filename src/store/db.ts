import { mkdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { PGlite } from '@electric-sql/pglite'
import { btree_gin } from '@electric-sql/pglite/contrib/btree_gin'
import { pg_trgm } from '@electric-sql/pglite/contrib/pg_trgm'
import { sql } from 'drizzle-orm'
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core'
import { drizzle as drizzlePglite } from 'drizzle-orm/pglite'
import { migrate as migratePglite } from 'drizzle-orm/pglite/migrator'
import { drizzle as drizzlePostgres } from 'drizzle-orm/postgres-js'
import { migrate as migratePostgres } from 'drizzle-orm/postgres-js/migrator'
import postgres from 'postgres'
import * as schema from './schema.js'

/** One handle type for both drivers (a union of the two breaks Drizzle's overloads). */
export type Db = PgDatabase<PgQueryResultHKT, typeof schema>

/** Raw statements' results: `execute` gives an array of rows on postgres.js and `{ rows }` on PGlite. */
export function rowsOf(result: unknown): Record<string, unknown>[] {
  return Array.isArray(result) ? result : ((result as { rows?: Record<string, unknown>[] }).rows ?? [])
}

/** Arbitrary constant naming the advisory lock that serializes migrations across instances. */
const MIGRATION_LOCK_ID = 7_310_442_015

export const MIGRATIONS_DIR = fileURLToPath(new URL('../../drizzle', import.meta.url))

export interface Database {
  db: Db
  driver: 'postgres' | 'pglite'
  /** Where it points, without credentials: for the startup log. */
  describe: string
  migrate(): Promise<void>
  ping(): Promise<void>
  close(): Promise<void>
  /** PGlite only: the data directory as a tarball (tests start from a migrated snapshot). */
  dump?: () => Promise<Blob>
}

export interface DatabaseOptions {
  databaseUrl?: string | undefined
  dataDir?: string | undefined
  poolSize?: number
  /** Load a PGlite data directory dump instead of running initdb (tests use a migrated snapshot). */
  pgliteSnapshot?: Blob | File | undefined
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  return opts.databaseUrl ? openPostgres(opts.databaseUrl, opts.poolSize ?? 10) : openPglite(opts)
}

function openPostgres(url: string, poolSize: number): Database {
  const client = postgres(url, {
    max: poolSize,
    onnotice: () => {},
    // Fail fast while PostgreSQL is down instead of queueing requests behind a long connect.
    connect_timeout: 5,
  })
  const db = drizzlePostgres(preparing(client), { schema }) as unknown as Db
  const target = new URL(url)
  return {
    db,
    driver: 'postgres',
    describe: `postgresql://${target.host}${target.pathname}`,
    migrate: async () => {
      // Instances starting together would race on CREATE TABLE: one migrates at a time. The
      // lock is held on a connection of its own: reserved from the pool, it left a pool of one
      // (DATABASE_POOL_SIZE=1) nothing to migrate with, and both waited forever.
      const lock = postgres(url, { max: 1, onnotice: () => {}, connect_timeout: 5 })
      try {
        await lock`select pg_advisory_lock(${MIGRATION_LOCK_ID})`
        await migratePostgres(drizzlePostgres(client, { schema }), { migrationsFolder: MIGRATIONS_DIR })
      } finally {
        await lock`select pg_advisory_unlock(${MIGRATION_LOCK_ID})`.catch(() => undefined)
        await lock.end({ timeout: 5 })
      }
    },
    ping: async () => {
      await db.execute(sql`select 1`)
    },
    close: async () => {
      await client.end({ timeout: 5 })
    },
  }
}

/** Statements with more parameters than this are sent unprepared (see `preparing`). */
const PREPARE_MAX_PARAMS = 16

/**
 * Drizzle sends every statement that is not a named prepared query unprepared, so PostgreSQL
 * parses and plans it at each execution: on the send path that was as much PostgreSQL CPU as
 * running the batch's reads (docs/performance.md, issue 17). This makes postgres.js prepare
 * them instead, once per connection, transactions included (postgres.js hands `begin`'s callback
 * a client of its own; its savepoints reuse that one). Only statements with 1 to
 * PREPARE_MAX_PARAMS parameters: an `in (...)` list or a multi-row insert makes a new text per
 * length, and each would stay prepared on every connection for its life.
 */
function preparing(sql: postgres.Sql): postgres.Sql {
  const unsafe = sql.unsafe.bind(sql)
  sql.unsafe = ((query: string, params?: unknown[], options?: postgres.UnsafeQueryOptions) => {
    const n = params?.length ?? 0
    return unsafe(
      query,
      params as never,
      n >= 1 && n <= PREPARE_MAX_PARAMS ? { ...options, prepare: true } : options,
    )
  }) as typeof sql.unsafe
  // A transaction's client has no `begin` (nested transactions are its savepoints).
  if (typeof sql.begin !== 'function') return sql
  const begin = sql.begin.bind(sql) as (...args: unknown[]) => unknown
  sql.begin = ((...args: unknown[]) => {
    const fn = args.pop() as (tx: postgres.TransactionSql) => unknown
    return begin(...args, (tx: postgres.TransactionSql) =>
      fn(preparing(tx as unknown as postgres.Sql) as never),
    )
  }) as typeof sql.begin
  return sql
}

/**
 * PGlite starts PostgreSQL with `-F` (fsync off). Without it PostgreSQL asks for every sync a
 * commit needs; PGlite 0.5's Node filesystem turns those calls into no-ops (none reaches the
 * kernel), so this costs nothing measurable today and makes the embedded database durable as soon
 * as PGlite passes them on. What it does and does not survive now: README, "Quick start".
 */
const PGLITE_START_PARAMS = PGlite.defaultStartParams.filter((p) => p !== '-F')

async function openPglite(opts: DatabaseOptions): Promise<Database> {
  const dir =
    opts.dataDir === undefined || opts.dataDir === 'memory://' ? 'memory://' : `${opts.dataDir}/pglite`
  if (dir !== 'memory://') mkdirSync(dir, { recursive: true })
  const client = await PGlite.create(dir, {
    startParams: PGLITE_START_PARAMS,
    // Migrations create them (search); PGlite can only load extensions it was given here.
    extensions: { pg_trgm, btree_gin },
    ...(opts.pgliteSnapshot ? { loadDataDir: opts.pgliteSnapshot } : {}),
  })
  const db = drizzlePglite(client, { schema }) as unknown as Db
  return {
    db,
    driver: 'pglite',
    describe: `pglite ${dir}`,
    migrate: async () => {
      await migratePglite(drizzlePglite(client, { schema }), { migrationsFolder: MIGRATIONS_DIR })
    },
    ping: async () => {
      await client.query('select 1')
    },
    close: async () => {
      await client.close()
    },
    dump: async () => client.dumpDataDir('gzip'),
  }
}

/**
 * A uuid[] parameter that both drivers bind alike (one JSON text; postgres.js and PGlite disagree on
 * array parameters), for `= any(…)` over a list of ids.
 */
export const uuidArray = (ids: readonly string[]) =>
  sql`array(select value::uuid from json_array_elements_text(${JSON.stringify(ids)}::json))`
