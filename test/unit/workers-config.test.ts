import { describe, expect, it } from 'vitest'
import { ConfigError, loadConfig } from '../../src/config/config.js'
import { MAX_WORKERS, readWorkers } from '../../src/config/workers-config.js'
import { restartDelayMs } from '../../src/workers.js'

const SHARED = { database: true, redis: true }

/** readWorkers on one WORKERS value: the count and the problems it reported. */
function read(text: string | undefined, shared = SHARED, cpus = 8) {
  const problems: string[] = []
  const workers = readWorkers({ WORKERS: text }, shared, problems, () => cpus)
  return { workers, problems }
}

describe('WORKERS', () => {
  it('is one process by default', () => {
    expect(read(undefined, { database: false, redis: false })).toEqual({ workers: 1, problems: [] })
    expect(read('1', { database: false, redis: false })).toEqual({ workers: 1, problems: [] })
  })

  it('takes a count, or auto: one per CPU', () => {
    expect(read('4')).toEqual({ workers: 4, problems: [] })
    expect(read('auto', SHARED, 6)).toEqual({ workers: 6, problems: [] })
    expect(read(String(MAX_WORKERS))).toEqual({ workers: MAX_WORKERS, problems: [] })
    // auto on one CPU is one process, which needs nothing shared.
    expect(read('auto', { database: false, redis: false }, 1)).toEqual({ workers: 1, problems: [] })
  })

  it('refuses what is not a count', () => {
    for (const text of ['0', '-2', '1.5', 'two', String(MAX_WORKERS + 1)]) {
      expect(read(text).problems, text).toEqual([
        `WORKERS: "${text}" must be auto or an integer in 1..${MAX_WORKERS}`,
      ])
    }
  })

  it('refuses more than one worker without a shared database and Redis', () => {
    expect(read('2', { database: false, redis: true }).problems).toEqual([
      'WORKERS: 2 workers need DATABASE_URL (the embedded PGlite and the in-process broker cannot be shared between processes); set them, or WORKERS=1',
    ])
    expect(read('auto', { database: true, redis: false }, 3).problems).toEqual([
      'WORKERS: 3 workers need REDIS_URL (or REDIS_CLUSTER_NODES) (the embedded PGlite and the in-process broker cannot be shared between processes); set them, or WORKERS=1',
    ])
  })

  it('is read by loadConfig, where REDIS_CLUSTER_NODES counts as Redis', () => {
    const base = { JWT_SECRET: 'x'.repeat(32), DATABASE_URL: 'postgres://db/chat' }
    expect(loadConfig({ ...base, WORKERS: '3', REDIS_URL: 'redis://r' }).workers).toBe(3)
    expect(loadConfig({ ...base, WORKERS: '3', REDIS_CLUSTER_NODES: 'r:7000' }).workers).toBe(3)
    expect(() => loadConfig({ ...base, WORKERS: '3' })).toThrow(ConfigError)
  })
})

describe('worker restarts', () => {
  it('wait half a second, doubling per death in a row, at most 30 s', () => {
    expect([1, 2, 3, 4, 7, 8, 50].map(restartDelayMs)).toEqual([
      500, 1000, 2000, 4000, 30_000, 30_000, 30_000,
    ])
  })
})
