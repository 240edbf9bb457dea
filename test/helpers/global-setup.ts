import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { TestProject } from 'vitest/node'
import { openDatabase } from '../../src/store/db.js'
import { adminUrl } from './pg.js'

/**
 * Runs once per test run: checks that PostgreSQL answers (a missing server fails the run, it
 * never skips), and builds a migrated PGlite snapshot that each test file loads in ~1 s instead
 * of running initdb (4–11 s on this machine).
 */
export default async function setup(project: TestProject) {
  const { default: postgres } = await import('postgres')
  const sql = postgres(adminUrl(), { max: 1, connect_timeout: 5, onnotice: () => {} })
  try {
    await sql`select 1`
  } catch (err) {
    throw new Error(`PostgreSQL is not reachable at ${adminUrl()} (set TEST_DATABASE_URL): ${String(err)}`)
  } finally {
    await sql.end()
  }
  const { Redis } = await import('ioredis')
  const redis = new Redis(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379', {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  })
  try {
    await redis.connect()
    await redis.ping()
  } catch (err) {
    throw new Error(`Redis is not reachable (set TEST_REDIS_URL): ${String(err)}`)
  } finally {
    redis.disconnect()
  }
  const dir = mkdtempSync(join(tmpdir(), 'chat-pglite-'))
  const database = await openDatabase({ dataDir: 'memory://' })
  await database.migrate()
  const dump = await dumpPglite(database)
  const file = join(dir, 'snapshot.tar.gz')
  writeFileSync(file, Buffer.from(await dump.arrayBuffer()))
  await database.close()
  project.provide('pgliteSnapshot', file)
  const coverage = join(dir, 'contract-coverage.jsonl')
  writeFileSync(coverage, '')
  project.provide('contractCoverage', coverage)
  return () => {
    const checked = readFileSync(coverage, 'utf8')
    if (checked !== '') console.log(contractSummary(checked))
    rmSync(dir, { recursive: true, force: true })
  }
}

async function dumpPglite(database: Awaited<ReturnType<typeof openDatabase>>): Promise<Blob> {
  if (!database.dump) throw new Error('not a PGlite database')
  return database.dump()
}

/** One line: how much traffic the suite checked against /openapi.json and docs/asyncapi.yaml. */
function contractSummary(lines: string): string {
  const total: Record<string, number> = {}
  for (const line of lines.split('\n').filter(Boolean)) {
    const { kind, ...counts } = JSON.parse(line) as Record<string, number | string>
    for (const [name, n] of Object.entries(counts))
      total[`${kind} ${name}`] = (total[`${kind} ${name}`] ?? 0) + Number(n)
  }
  const parts = Object.entries(total).map(([name, n]) => `${n} ${name}`)
  return `contract coverage: ${parts.join(', ')} checked against the API documents (test/helpers/contract.ts)`
}

declare module 'vitest' {
  export interface ProvidedContext {
    pgliteSnapshot: string
    /** A file each test app appends its contract-check counts to (test/helpers/contract.ts). */
    contractCoverage: string
  }
}
