import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PGlite } from '@electric-sql/pglite'
import { drizzle } from 'drizzle-orm/pglite'
import { migrate } from 'drizzle-orm/pglite/migrator'
import { loadConfig } from '../src/config/config.js'
import type { Database, Db } from '../src/store/db.js'
import { MIGRATIONS_DIR } from '../src/store/db.js'
import * as schema from '../src/store/schema.js'
import { createServices, memoryInfrastructure } from '../src/wiring.js'

/**
 * What PGlite's fsync setting costs the embedded default: 1,000 messages through MessageService on
 * an on-disk PGlite, one at a time (each its own commit) and 1,000 at once (group-committed), with
 * PGlite's default start parameters (`-F`: fsync off) and without `-F`.
 * `npx tsx bench/pglite-fsync.ts [rounds] [off|on]`; one variant under
 * `strace -f -c -e trace=fsync,fdatasync` counts the syncs that reach the kernel.
 */
const MESSAGES = 1000
const rounds = Number(process.argv[2] ?? 3)
const only = process.argv[3]

const withFsync = PGlite.defaultStartParams.filter((p) => p !== '-F')
const variants = Object.fromEntries(
  Object.entries({ off: PGlite.defaultStartParams, on: withFsync }).filter(([k]) => !only || k === only),
)

async function run(startParams: string[]) {
  const dir = mkdtempSync(join(tmpdir(), 'pglite-fsync-'))
  const client = await PGlite.create(dir, { startParams })
  try {
    const fsync = (await client.query<{ fsync: string }>('show fsync')).rows[0]?.fsync
    const db = drizzle(client, { schema }) as unknown as Db
    await migrate(drizzle(client, { schema }), { migrationsFolder: MIGRATIONS_DIR })
    const database = { db, driver: 'pglite' } as Database
    const config = loadConfig({ NODE_ENV: 'test', JWT_SECRET: 'x'.repeat(32), RATE_LIMITS: 'off' })
    const services = createServices(config, database, memoryInfrastructure(config))
    const user = (n: string) =>
      services.users.create({ email: `${n}@bench.invalid`, password: 'Bench-passw0rd!', fullName: n })
    const [a, b] = [await user('a'), await user('b')]
    const conv = (await services.conversations.openDirect(a.id, b.id)).conversation.id
    let started = performance.now()
    for (let i = 0; i < MESSAGES; i++) await services.messages.send(a.id, conv, `one at a time ${i}`)
    const sequentialMs = performance.now() - started
    started = performance.now()
    await Promise.all(
      Array.from({ length: MESSAGES }, (_, i) => services.messages.send(b.id, conv, `all at once ${i}`)),
    )
    const concurrentMs = performance.now() - started
    return { fsync, sequentialMs, concurrentMs }
  } finally {
    await client.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

const median = (xs: number[]) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)] as number
// Rounds alternate between the variants, so a machine busier at one moment weighs on both alike.
const results = new Map<string, Awaited<ReturnType<typeof run>>[]>()
for (let r = 0; r < rounds; r++) {
  for (const [name, params] of Object.entries(variants)) {
    results.set(name, [...(results.get(name) ?? []), await run(params)])
  }
}
for (const [name, runs] of results) {
  const seq = runs.map((r) => r.sequentialMs)
  const con = runs.map((r) => r.concurrentMs)
  console.log(
    `fsync ${name}${name === 'off' ? ' (PGlite default)' : ''}: show fsync = ${runs[0]?.fsync}; ` +
      `${MESSAGES} sends one at a time ${((MESSAGES / median(seq)) * 1000).toFixed(0)} msg/s ` +
      `(median of ${rounds}; ${seq.map((x) => x.toFixed(0)).join(', ')} ms), all at once ` +
      `${((MESSAGES / median(con)) * 1000).toFixed(0)} msg/s (${con.map((x) => x.toFixed(0)).join(', ')} ms)`,
  )
}
