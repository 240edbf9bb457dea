import cluster, { type Worker } from 'node:cluster'
import type { Logger } from 'pino'
import type { Config } from './config/config.js'

/**
 * WORKERS=N (N > 1): this process forks N workers that each run the normal startup (server.ts),
 * so each is an instance of its own (own instance id, pools and timers) joined to the others
 * through Redis and PostgreSQL exactly as separate hosts are. They all listen on PORT: Node's
 * cluster module hands each new connection to the next worker in turn. This process serves
 * nothing; it restarts workers that die and stops them on SIGTERM/SIGINT.
 */

/** First restart delay of a worker that died; doubled per death in a row, up to RESTART_MAX_MS. */
const RESTART_BASE_MS = 500
const RESTART_MAX_MS = 30_000
/** A worker that lived this long had started fine: its next death restarts it without delay build-up. */
const STABLE_MS = 30_000
/** Workers exit at the latest 2 s after SHUTDOWN_TIMEOUT_MS on their own; past this margin they are killed. */
const STOP_GRACE_MS = 5000

/** Whether this process supervises workers instead of serving. */
export function supervises(config: Config): boolean {
  return config.workers > 1 && cluster.isPrimary
}

/** The logger a serving process uses: a worker's lines say which worker wrote them. */
export function instanceLogger(logger: Logger): Logger {
  return cluster.worker ? logger.child({ worker: cluster.worker.id }) : logger
}

/** One of the N places a worker runs in; a worker that dies is replaced in its slot. */
interface Slot {
  worker: Worker | undefined
  listening: boolean
  startedAt: number
  /** Deaths in a row: the next restart waits RESTART_BASE_MS × 2^(deaths − 1). */
  deaths: number
  restart: NodeJS.Timeout | undefined
}

/** Restart delay after the `deaths`-th death in a row. */
export function restartDelayMs(deaths: number): number {
  return Math.min(RESTART_MAX_MS, RESTART_BASE_MS * 2 ** Math.max(0, deaths - 1))
}

/**
 * Forks the workers and keeps them running until SIGTERM/SIGINT, then stops them gracefully and
 * exits (0 when every worker shut down cleanly).
 */
export function superviseWorkers(config: Config, logger: Logger): void {
  const slots: Slot[] = Array.from({ length: config.workers }, () => ({
    worker: undefined,
    listening: false,
    startedAt: 0,
    deaths: 0,
    restart: undefined,
  }))
  let stopping = false
  let failedStops = 0

  const fork = (slot: Slot) => {
    slot.restart = undefined
    slot.startedAt = Date.now()
    const worker = cluster.fork()
    slot.worker = worker
    worker.once('listening', (address) => {
      slot.listening = true
      logger.info({ worker: worker.id, workerPid: worker.process.pid }, 'worker listening')
      forkRest()
      if (slots.every((s) => s.listening))
        logger.info(`${slots.length} workers serving on ${address.address}:${address.port}`)
    })
    worker.once('exit', (code, signal) => exited(slot, worker, code, signal))
  }

  // The first worker starts alone: it migrates the database and creates what a first boot
  // creates once (search index, generated keys) while no other process races it for them.
  const forkRest = () => {
    for (const slot of slots) if (!slot.worker && !slot.restart && !stopping) fork(slot)
  }

  const exited = (slot: Slot, worker: Worker, code: number | null, signal: string | null) => {
    slot.worker = undefined
    slot.listening = false
    if (stopping) {
      // Killed by the SIGTERM itself: it was still starting (no handler yet), with nothing to drain.
      if (code !== 0 && signal !== 'SIGTERM') failedStops++
      if (slots.every((s) => !s.worker)) finish()
      return
    }
    if (Date.now() - slot.startedAt >= STABLE_MS) slot.deaths = 0
    slot.deaths++
    const delayMs = restartDelayMs(slot.deaths)
    logger.error(
      {
        worker: worker.id,
        workerPid: worker.process.pid,
        code,
        signal,
        deaths: slot.deaths,
        restartInMs: delayMs,
      },
      'worker died; restarting it',
    )
    slot.restart = setTimeout(() => fork(slot), delayMs)
  }

  const finish = () => {
    logger.info(failedStops === 0 ? 'workers stopped' : `${failedStops} worker(s) did not stop cleanly`)
    process.exit(failedStops === 0 ? 0 : 1)
  }

  const stop = (signal: NodeJS.Signals) => {
    if (stopping) return
    stopping = true
    logger.info({ signal }, 'shutting down the workers')
    for (const slot of slots) clearTimeout(slot.restart)
    const live = slots.flatMap((s) => (s.worker ? [s.worker] : []))
    if (live.length === 0) finish()
    // Each worker runs its own graceful shutdown on SIGTERM (server.ts), then exits.
    for (const worker of live) worker.process.kill('SIGTERM')
    setTimeout(() => {
      logger.error('workers did not stop in time; killing them')
      for (const s of slots) s.worker?.process.kill('SIGKILL')
      process.exit(1)
    }, config.shutdownTimeoutMs + STOP_GRACE_MS).unref()
  }

  for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => stop(signal))
  logger.info(
    { workers: slots.length, databaseConnections: slots.length * config.databasePoolSize },
    `starting ${slots.length} workers`,
  )
  fork(slots[0] as Slot)
}
