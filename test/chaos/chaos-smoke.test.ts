import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'

/**
 * A short seeded chaos run (docs/reliability.md): two instances on a private PostgreSQL and
 * Redis, every fault kind at least once in about a minute, then every invariant. It runs as a
 * child process (`npm run chaos`), which stops everything it started however it ends. Missing
 * PostgreSQL binaries or redis-server make it fail, never skip.
 */
const SEED = 20261202
const dir = mkdtempSync(join(tmpdir(), 'chaos-smoke-'))
afterAll(() => rmSync(dir, { recursive: true, force: true }))

interface ChaosResult {
  timeline: { kind: string }[]
  checks: { acked_messages: number } | undefined
  violations: { kind: string; count: number; examples: string[] }[]
  violation_count: number
}

function runChaos(args: string[]): Promise<{ code: number | null; output: string; result?: ChaosResult }> {
  const json = join(dir, 'result.json')
  return new Promise((resolve, reject) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'chaos/cli.ts', ...args, '--json', json, '--logs', join(dir, 'logs')],
      { cwd: join(import.meta.dirname, '..', '..'), stdio: ['ignore', 'pipe', 'pipe'] },
    )
    let output = ''
    child.stdout.on('data', (c: Buffer) => {
      output += c.toString()
    })
    child.stderr.on('data', (c: Buffer) => {
      output += c.toString()
    })
    // The test's own timeout must not leave the run's servers behind: SIGTERM makes it clean up.
    const guard = setTimeout(() => child.kill('SIGTERM'), 170_000)
    child.on('error', reject)
    child.on('exit', (code) => {
      clearTimeout(guard)
      let result: ChaosResult | undefined
      try {
        result = JSON.parse(readFileSync(json, 'utf8')) as ChaosResult
      } catch {
        result = undefined
      }
      resolve({ code, output, result })
    })
  })
}

describe('chaos run (smoke)', () => {
  it('survives every fault kind with zero violations', async () => {
    const { code, output, result } = await runChaos(['--seed', String(SEED), '--minutes', '1'])
    expect(result, output).toBeDefined()
    const kinds = new Set(result?.timeline.map((f) => f.kind))
    for (const kind of ['kill', 'term', 'redis', 'postgres', 'drop']) expect(kinds, output).toContain(kind)
    expect(result?.checks?.acked_messages, output).toBeGreaterThan(100)
    // On failure the message lists each violated invariant with examples, and the seed to replay.
    const violations = result?.violations.map((v) => `${v.kind}: ${v.count}\n  ${v.examples.join('\n  ')}`)
    expect(violations, output.slice(-6000)).toEqual([])
    expect(code, output.slice(-3000)).toBe(0)
  }, 180_000)
})
