import { readFileSync } from 'node:fs'
import { inject } from 'vitest'
import { type Database, openDatabase } from '../../src/store/db.js'
import { createTestDatabase } from './pg.js'

/**
 * Test databases, apart from `app.ts` (which re-exports them) so that a test of the store alone
 * does not load the whole app: importing it costs seconds per test file.
 */

export type Driver = 'postgres' | 'pglite'
export const DRIVERS: Driver[] = ['postgres', 'pglite']

/** A migrated database of the given driver, fresh for the caller; `close` drops it. */
export async function openTestDatabase(driver: Driver): Promise<Database & { url?: string }> {
  if (driver === 'pglite') {
    const snapshot = new Blob([readFileSync(inject('pgliteSnapshot'))])
    const db = await openDatabase({ dataDir: 'memory://', pgliteSnapshot: snapshot })
    await db.migrate()
    return db
  }
  const { url, drop } = await createTestDatabase()
  const db = await openDatabase({ databaseUrl: url, poolSize: 10 })
  await db.migrate()
  const closeConnections = db.close
  return Object.assign(db, {
    url,
    close: async () => {
      await closeConnections()
      await drop()
    },
  })
}
