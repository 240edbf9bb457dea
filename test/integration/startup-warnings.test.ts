import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import pino from 'pino'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { buildApp } from '../../src/app.js'
import { loadConfig } from '../../src/config/config.js'
import type { Database } from '../../src/store/db.js'
import { createServices, memoryInfrastructure } from '../../src/wiring.js'
import { openTestDatabase } from '../helpers/app.js'

/** The app as started, with its log captured. */
async function warningsAtStartup(database: Database, env: Record<string, string>): Promise<string[]> {
  const lines: string[] = []
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(chunk.toString())
      done()
    },
  })
  const logger = pino({ level: 'warn' }, sink)
  const config = loadConfig({ NODE_ENV: 'development', LOG_LEVEL: 'warn', ...env })
  const app = await buildApp(createServices(config, database, memoryInfrastructure(config)), logger)
  await app.close()
  return lines.map((l) => (JSON.parse(l) as { msg: string }).msg)
}

describe('startup warnings', () => {
  let database: Database
  let dataDir: string
  beforeAll(async () => {
    database = await openTestDatabase('postgres')
    dataDir = mkdtempSync(join(tmpdir(), 'chat-startup-'))
  })
  afterAll(async () => {
    await database?.close()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('warns that instances will not accept each other’s tokens when the secret was generated and a service is shared', async () => {
    const warnings = await warningsAtStartup(database, {
      DATA_DIR: dataDir,
      REDIS_URL: 'redis://127.0.0.1:6379',
    })
    expect(warnings).toContainEqual(
      expect.stringMatching(/JWT_SECRET is not set.*will not accept each other's tokens/),
    )
  })

  it('does not when JWT_SECRET is set', async () => {
    const warnings = await warningsAtStartup(database, {
      DATA_DIR: dataDir,
      REDIS_URL: 'redis://127.0.0.1:6379',
      JWT_SECRET: 'y'.repeat(40),
    })
    expect(warnings.filter((w) => w.includes('JWT_SECRET'))).toEqual([])
  })
})
