import { Rng } from './prng.js'

/**
 * The fault schedule: a pure function of the seed and the run's shape, so the same arguments
 * give the same faults at the same planned times (what actually happens also depends on timing,
 * which the report prints next to the plan).
 */
export const FAULT_KINDS = ['kill', 'term', 'redis', 'postgres', 'drop'] as const
export type FaultKind = (typeof FAULT_KINDS)[number]

export interface Fault {
  /** Planned start, ms after the load began. A fault starts then or when the previous one ends. */
  at: number
  kind: FaultKind
  /** Instance index (kill, term, drop). */
  target?: number
  /**
   * kill: how long the instance stays dead before it is restarted; term: pause between its exit
   * and the restart; redis, postgres: how long the server stays stopped; drop: 0.
   */
  downMs: number
}

export interface ScheduleShape {
  seed: number
  durationMs: number
  instances: number
  /** Load without faults at the start, so every instance has a baseline to compare against. */
  warmupMs: number
  /** No fault starts in the last `quietMs`: the run must converge before the checks. */
  quietMs: number
}

/** Rough time a fault occupies, including the recovery the executor waits for. */
function estimateMs(kind: FaultKind, downMs: number): number {
  switch (kind) {
    case 'kill':
      return downMs + 6000
    case 'term':
      return downMs + 9000
    case 'redis':
      return downMs + 1500
    case 'postgres':
      return downMs + 2500
    case 'drop':
      return 500
  }
}

function downFor(kind: FaultKind, rng: Rng): number {
  switch (kind) {
    case 'kill':
      return rng.int(500, 2500)
    case 'term':
      return rng.int(200, 1500)
    case 'redis':
    case 'postgres':
      return rng.int(2500, 6000)
    case 'drop':
      return 0
  }
}

/**
 * The first faults are every kind once, process faults first: an instance restarted early has a
 * long last life in which file-descriptor and memory growth can be measured. After that, kinds
 * are drawn at random (drops twice as often: they are cheap and hit every socket on an instance),
 * and process faults stop at 60% of the fault window for the same reason.
 */
export function makeSchedule(shape: ScheduleShape): Fault[] {
  const rng = new Rng(shape.seed).fork('schedule')
  const end = shape.durationMs - shape.quietMs
  const processCutoff = shape.warmupMs + 0.6 * (end - shape.warmupMs)
  const first: FaultKind[] = [
    ...rng.shuffle(['kill', 'term'] as FaultKind[]),
    ...rng.shuffle(['redis', 'postgres', 'drop'] as FaultKind[]),
  ]
  const weighted: FaultKind[] = ['kill', 'term', 'redis', 'postgres', 'drop', 'drop']
  const faults: Fault[] = []
  const targets = rng.shuffle(Array.from({ length: shape.instances }, (_, i) => i))
  let at = shape.warmupMs
  for (let i = 0; ; i++) {
    let kind = first[i] ?? rng.pick(weighted)
    if (i >= first.length && (kind === 'kill' || kind === 'term') && at > processCutoff) kind = 'drop'
    const downMs = downFor(kind, rng)
    const needed = estimateMs(kind, downMs)
    // The opening round always runs whole (every kind at least once); later faults must fit.
    if (i >= first.length && at + needed > end) break
    const fault: Fault = { at, kind, downMs }
    if (kind === 'kill' || kind === 'term' || kind === 'drop') {
      // The two opening process faults hit different instances when there are several.
      fault.target = i < 2 ? (targets[i % targets.length] as number) : rng.int(0, shape.instances - 1)
    }
    faults.push(fault)
    at += needed + rng.int(1000, 3000)
  }
  return faults
}

export function describeFault(f: Fault): string {
  const target = f.target === undefined ? '' : ` instance ${f.target}`
  switch (f.kind) {
    case 'kill':
      return `SIGKILL${target}, restart after ${f.downMs} ms`
    case 'term':
      return `SIGTERM${target}, restart ${f.downMs} ms after it exits`
    case 'redis':
      return `Redis stopped for ${f.downMs} ms`
    case 'postgres':
      return `PostgreSQL stopped (immediate) for ${f.downMs} ms`
    case 'drop':
      return `drop every proxied connection of${target}`
  }
}
