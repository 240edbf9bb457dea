import { availableParallelism } from 'node:os'

/** The most worker processes WORKERS may ask for: far past any host's cores, short of a typo's 10000. */
export const MAX_WORKERS = 256

/**
 * WORKERS: how many server processes share the port (src/workers.ts). `auto` is one per CPU the
 * process may use. More than one needs DATABASE_URL and Redis: the embedded PGlite is one
 * process's files and the in-process broker reaches no other process, so the workers would be
 * strangers to each other.
 */
export function readWorkers(
  v: Record<string, unknown>,
  shared: { database: boolean; redis: boolean },
  problems: string[],
  cpus: () => number = availableParallelism,
): number {
  const text = String(v.WORKERS ?? '1')
  const n = text === 'auto' ? cpus() : Number(text)
  if (!Number.isInteger(n) || n < 1 || n > MAX_WORKERS) {
    problems.push(`WORKERS: "${text}" must be auto or an integer in 1..${MAX_WORKERS}`)
    return 1
  }
  if (n === 1) return 1
  const missing = [
    shared.database ? [] : ['DATABASE_URL'],
    shared.redis ? [] : ['REDIS_URL (or REDIS_CLUSTER_NODES)'],
  ].flat()
  if (missing.length > 0) {
    problems.push(
      `WORKERS: ${n} workers need ${missing.join(' and ')} (the embedded PGlite and the in-process broker ` +
        'cannot be shared between processes); set them, or WORKERS=1',
    )
  }
  return n
}
