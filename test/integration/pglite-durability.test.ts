import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from 'drizzle-orm'
import { afterAll, describe, expect, it } from 'vitest'
import { openDatabase, rowsOf } from '../../src/store/db.js'

const dataDir = mkdtempSync(join(tmpdir(), 'chat-pglite-durability-'))
afterAll(() => rmSync(dataDir, { recursive: true, force: true }))

/** What the README promises of the embedded default (DATA_DIR, no DATABASE_URL). */
describe('the embedded PGlite database', () => {
  it('runs with fsync on, and keeps every acknowledged message when the process is killed', async () => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'test/helpers/pglite-writer.ts', dataDir, '200'],
      {
        cwd: join(import.meta.dirname, '..', '..'),
        stdio: ['ignore', 'pipe', 'inherit'],
      },
    )
    let output = ''
    const report = new Promise<{ acked: number; conv: string; settings: unknown }>((resolve, reject) => {
      child.stdout.on('data', (c: Buffer) => {
        output += c.toString()
        const line = output.split('\n').find((l) => l.startsWith('{'))
        if (line) resolve(JSON.parse(line))
      })
      child.once('exit', (code) => reject(new Error(`writer exited (${code}) before reporting: ${output}`)))
    })
    const { acked, conv, settings } = await report
    // No close, no checkpoint: only what each commit wrote before it returned is on disk.
    child.kill('SIGKILL')
    await once(child, 'exit')
    expect(rowsOf(settings)[0]?.fsync).toBe('on')

    const reopened = await openDatabase({ dataDir })
    try {
      const rows = rowsOf(
        await reopened.db.execute(
          sql`select count(*)::int as n from messages where conversation_id = ${conv}`,
        ),
      )
      expect(acked).toBe(200)
      expect(rows[0]?.n).toBe(acked)
    } finally {
      await reopened.close()
    }
  })
})
