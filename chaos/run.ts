import { randomBytes } from 'node:crypto'
import postgres from 'postgres'
import { Rest } from '../bench/rest.js'
import { type CheckSummary, checkInvariants, converge } from './checker.js'
import type { Endpoint } from './client.js'
import { Cluster } from './cluster.js'
import { FaultInjector, type TimelineEntry } from './faults.js'
import { Ledger } from './ledger.js'
import { Rng } from './prng.js'
import { type InstanceVerdict, ProcSampler } from './procstats.js'
import { type Fault, makeSchedule } from './schedule.js'
import { World } from './world.js'

export interface RunOptions {
  seed: number
  minutes: number
  instances: number
  users: number
  /** Messages per second offered by all users together. */
  rate: number
  logDir: string
}

export interface RunResult {
  options: RunOptions
  replay: string
  schedule: Fault[]
  timeline: TimelineEntry[]
  load_ms: number
  converge_ms: number
  counts: Record<string, number>
  http: Record<string, number>
  ws_errors: Record<string, number>
  checks: CheckSummary | undefined
  instances: InstanceVerdict[]
  /** Group removals and the delivery gaps the clients saw, for diagnosing a failure. */
  episodes: Ledger['episodes']
  gaps: Ledger['gaps']
  violations: { kind: string; count: number; examples: string[] }[]
  violation_count: number
}

const WARMUP_MS = 8000
const QUIET_MS = 8000
const CONVERGE_TIMEOUT_MS = 30_000
const SAMPLE_EVERY_MS = 2000

export function replayCommand(o: RunOptions): string {
  return `npm run chaos -- --seed ${o.seed} --minutes ${o.minutes} --instances ${o.instances} --users ${o.users} --rate ${o.rate}`
}

/** Whatever the run has started, so a signal handler can kill it synchronously. */
export const live: { cluster?: Cluster } = {}

/**
 * One chaos run: start PostgreSQL, Redis and the instances behind proxies, set up the users, then
 * load and faults together for `minutes`, then let the system converge and check everything.
 */
export async function runChaos(o: RunOptions, log: (line: string) => void): Promise<RunResult> {
  const ledger = new Ledger()
  const say = (line: string) => log(`[${ledger.stamp()}] ${line}`)
  const durationMs = Math.round(o.minutes * 60_000)
  const schedule = makeSchedule({
    seed: o.seed,
    durationMs,
    instances: o.instances,
    warmupMs: WARMUP_MS,
    quietMs: QUIET_MS,
  })
  say(`seed ${o.seed}: ${schedule.length} faults planned over ${o.minutes} min; replay: ${replayCommand(o)}`)
  const cluster = await Cluster.start(
    { instances: o.instances, logDir: o.logDir, jwtSecret: randomBytes(48).toString('base64url') },
    say,
    (c) => {
      live.cluster = c
    },
  )
  const sql = postgres(cluster.pg.url, { max: 2, onnotice: () => {}, connect_timeout: 3 })
  const endpoints: Endpoint[] = cluster.instances.map((i) => ({
    ws: `ws://127.0.0.1:${i.proxy.port}`,
    rest: new Rest(`http://127.0.0.1:${i.proxy.port}`),
  }))
  const sampler = new ProcSampler(cluster)
  let world: World | undefined
  const faults = new FaultInjector(cluster, ledger, say, {
    slowSends: (i, ms) => world?.slowSends(i, ms) ?? [],
    redisDown: () => world?.redisDown(),
  })
  try {
    say(`${o.instances} instances ready (logs in ${o.logDir})`)
    world = await World.setup(
      { users: o.users, rate: o.rate, restShare: 0.2 },
      endpoints,
      ledger,
      new Rng(o.seed).fork('world'),
      sql,
    )
    say(`${o.users} users, ${world.conversations.length} conversations, sockets open`)
    sampler.start(SAMPLE_EVERY_MS)
    ledger.startClock()
    world.start()
    const injecting = faults.run(schedule)
    // Faults that start late still run whole; then the load goes on without faults for a while.
    await Promise.all([new Promise((r) => setTimeout(r, durationMs)), injecting])
    const sinceFault = ledger.now() - (faults.timeline.at(-1)?.endMs ?? 0)
    if (sinceFault < QUIET_MS) await new Promise((r) => setTimeout(r, QUIET_MS - sinceFault))
    const loadMs = ledger.now()
    world.quiesce()
    say(`load stopped after ${(loadMs / 1000).toFixed(1)} s; converging`)
    const conv = await converge(world, ledger, sql, CONVERGE_TIMEOUT_MS)
    say(
      conv.done
        ? `converged in ${(conv.ms / 1000).toFixed(1)} s`
        : `did not converge in ${CONVERGE_TIMEOUT_MS / 1000} s: ${conv.waitingFor}`,
    )
    await sampler.sampleNow()
    sampler.stop()
    const instances = sampler.verdicts(ledger, say)
    const checks = await checkInvariants(world, ledger, sql)
    return {
      options: o,
      replay: replayCommand(o),
      schedule,
      timeline: faults.timeline,
      load_ms: Math.round(loadMs),
      converge_ms: Math.round(conv.ms),
      counts: ledger.counts,
      http: ledger.http,
      ws_errors: ledger.wsErrors,
      checks,
      instances,
      episodes: ledger.episodes,
      gaps: ledger.gaps,
      violations: [...ledger.violations].map(([kind, v]) => ({ kind, ...v })),
      violation_count: ledger.violationCount,
    }
  } finally {
    faults.stop()
    sampler.stop()
    await world?.stop()
    for (const e of endpoints) e.rest.close()
    await sql.end({ timeout: 1 }).catch(() => undefined)
    await cluster.stop()
    live.cluster = undefined
  }
}
