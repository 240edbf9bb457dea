import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { adminUrl } from '../helpers/pg.js'

/**
 * Every bench scenario in --smoke mode (seconds, tiny), so the bench cannot rot. Only that it
 * completes and counts nothing lost, duplicated or reordered is asserted: never a timing.
 */
const dir = mkdtempSync(join(tmpdir(), 'bench-smoke-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface BenchResult {
  ok: boolean
  correctness: {
    sent: number
    acked: number
    lost: number
    duplicated: number
    out_of_order: number
    seq_gaps: number
  } | null
  summary: Record<string, unknown>
}

function runBench(
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number | null; output: string; result: BenchResult }> {
  const out = join(dir, `${args.join('-')}-${Date.now()}.json`)
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'bench/cli.ts', ...args, '--smoke', '--quiet', '--out', out],
      {
        cwd: join(import.meta.dirname, '..', '..'),
        env,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    )
    let output = ''
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString()
    })
    child.on('error', reject)
    child.on('exit', (code) => {
      try {
        resolve({ code, output, result: JSON.parse(readFileSync(out, 'utf8')) as BenchResult })
      } catch {
        reject(new Error(`bench ${args.join(' ')} wrote no result (exit ${code}):\n${output}`))
      }
    })
  })
}

const onServers = {
  ...process.env,
  DATABASE_URL: adminUrl(),
  REDIS_URL: process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379',
}

describe('bench --smoke', () => {
  it.each(['dm', 'hot', 'fanout', 'cluster', 'ceiling'])(
    '%s on PostgreSQL and Redis delivers every acked message once, in order',
    async (scenario) => {
      const { code, output, result } = await runBench([scenario], onServers)
      expect(result.correctness, output).not.toBeNull()
      expect(result.correctness?.acked, output).toBeGreaterThan(0)
      expect(result.correctness, output).toMatchObject({
        lost: 0,
        duplicated: 0,
        out_of_order: 0,
        seq_gaps: 0,
      })
      expect(code, output).toBe(0)
    },
    180_000,
  )

  it('connections opens every socket', async () => {
    const { code, output, result } = await runBench(['connections'], onServers)
    expect(result.summary.sockets_failed, output).toBe(0)
    expect(result.summary.sockets_open, output).toBeGreaterThan(0)
    expect(code, output).toBe(0)
  }, 180_000)

  it('history pages return the right messages', async () => {
    const { code, output, result } = await runBench(['history'], onServers)
    expect(result.summary.wrong_pages, output).toBe(0)
    expect(code, output).toBe(0)
  }, 180_000)

  it('search finds only messages of the searcher’s conversations', async () => {
    const { code, output, result } = await runBench(['search'], onServers)
    expect(result.summary.foreign_hits, output).toBe(0)
    expect(result.summary.worst_http_p99_ms, output).toBeGreaterThan(0)
    expect(code, output).toBe(0)
  }, 180_000)

  it('dm on the embedded database (no PostgreSQL, no Redis)', async () => {
    const env = { ...process.env }
    delete env.DATABASE_URL
    delete env.REDIS_URL
    const { code, output, result } = await runBench(['dm'], env)
    expect(result.correctness, output).toMatchObject({ lost: 0, duplicated: 0, out_of_order: 0 })
    expect(code, output).toBe(0)
  }, 180_000)
})
