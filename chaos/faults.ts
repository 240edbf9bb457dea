import { type Cluster, type Instance, readyStatus } from './cluster.js'
import type { Ledger } from './ledger.js'
import { describeFault, type Fault } from './schedule.js'

/** A graceful shutdown should take seconds (in-flight writes, then close frames); past this it hangs. */
export const SHUTDOWN_DEADLINE_MS = 10_000
const START_TIMEOUT_MS = 90_000
/** How long the bodies of the slow REST sends in flight at SIGTERM take to arrive. */
const SLOW_BODY_MS = 3000
/** Instances must report ready this soon after a dependency is back. */
const RECOVERY_DEADLINE_MS = 30_000

/** What the clients do on cue, so that a fault meets the traffic that exposes its defects. */
export interface FaultHooks {
  /**
   * REST sends to instance i whose bodies trickle in over `ms`, over keep-alive connections:
   * SIGTERM comes while they are under way, so the drain has requests to finish and keep-alive
   * connections to close (a rolling deploy with slow clients).
   */
  slowSends(instance: number, ms: number): { started: Promise<void>; done: Promise<string> }[]
  /** Redis just stopped: membership changes and reconnects now meet the outage. */
  redisDown(): void
}

export interface TimelineEntry {
  /** `crash`: not scheduled, an instance died by itself (and was restarted, as a supervisor would). */
  kind: Fault['kind'] | 'crash'
  target?: number
  description: string
  plannedMs: number
  startMs: number
  endMs: number
  notes: string[]
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

/** "200 at 40 ms", … → "200×5 (last at 40 ms), connection error×3 (…)". */
function tally(answers: string[]): string {
  const by = new Map<string, number[]>()
  for (const a of answers) {
    const [what, at] = a.split(' at ')
    by.set(what as string, [...(by.get(what as string) ?? []), Number.parseInt(at ?? '0', 10)])
  }
  return [...by].map(([what, ms]) => `${what}×${ms.length} (last at ${Math.max(...ms)} ms)`).join(', ')
}

/**
 * Runs the schedule one fault at a time: each starts at its planned time, or when the previous
 * one has recovered if that took longer. Every fault ends with the system whole again (instance
 * restarted, dependency back and every instance ready), so a violation can be pinned on one fault.
 */
export class FaultInjector {
  readonly timeline: TimelineEntry[] = []
  private stopped = false
  /** Per instance, the work on it in progress: a crash restart and a scheduled fault never overlap. */
  private readonly busy = new Map<Instance, Promise<void>>()

  constructor(
    private readonly cluster: Cluster,
    private readonly ledger: Ledger,
    private readonly log: (line: string) => void,
    private readonly hooks: FaultHooks,
  ) {
    for (const inst of cluster.instances) inst.onCrash = (exit) => void this.crashed(inst, exit)
  }

  stop(): void {
    this.stopped = true
    for (const inst of this.cluster.instances) inst.onCrash = undefined
  }

  /** Waits for whatever is being done to the instances (a crash restart) to finish. */
  async settled(): Promise<void> {
    await Promise.all(this.busy.values())
  }

  private exclusive(inst: Instance, work: () => Promise<void>): Promise<void> {
    const next = (this.busy.get(inst) ?? Promise.resolve()).then(work)
    const tracked = next.catch(() => undefined)
    this.busy.set(inst, tracked)
    return next
  }

  /** An instance died on its own: a violation, then a restart, as a process supervisor would. */
  private crashed(inst: Instance, exit: { code: number | null; signal: string | null }): Promise<void> {
    const now = this.ledger.now()
    const entry: TimelineEntry = {
      kind: 'crash',
      target: inst.index,
      description: `instance ${inst.index} crashed (exit ${exit.code ?? exit.signal})`,
      plannedMs: now,
      startMs: now,
      endMs: now,
      notes: [],
    }
    this.timeline.push(entry)
    // Registered at once (not after reading the log), so whoever waits for the instances to
    // settle waits for this restart too.
    return this.exclusive(inst, async () => {
      entry.description += `: ${await inst.crashReason()}`
      this.ledger.violation('instance_crashed', entry.description)
      this.log(entry.description)
      await this.restart(inst, entry.notes)
    })
      .catch(() => undefined)
      .finally(() => {
        entry.endMs = this.ledger.now()
      })
  }

  /** Runs the schedule; its times count from the ledger's clock (the start of the load). */
  async run(schedule: Fault[]): Promise<void> {
    // A fault that starts late (the previous recovery took longer than planned) shifts the rest,
    // so the planned spacing between faults is kept.
    let slip = 0
    for (const f of schedule) {
      if (this.stopped) return
      const wait = f.at + slip - this.ledger.now()
      if (wait > 0) await sleep(wait)
      else slip -= wait
      await this.settled()
      if (this.stopped) return
      const entry: TimelineEntry = {
        kind: f.kind,
        ...(f.target !== undefined ? { target: f.target } : {}),
        description: describeFault(f),
        plannedMs: f.at,
        startMs: this.ledger.now(),
        endMs: 0,
        notes: [],
      }
      this.timeline.push(entry)
      this.ledger.endGrace()
      this.ledger.currentFault = entry.description
      this.log(`fault: ${entry.description}`)
      try {
        await this.inject(f, entry.notes)
      } catch (err) {
        entry.notes.push(`injector failed: ${err instanceof Error ? err.message : String(err)}`)
        this.ledger.violation('fault_recovery_failed', `${entry.description}: ${String(err)}`)
      }
      entry.endMs = this.ledger.now()
      this.ledger.currentFault = undefined
      this.log(`  done in ${((entry.endMs - entry.startMs) / 1000).toFixed(1)} s: ${entry.notes.join('; ')}`)
    }
  }

  private async inject(f: Fault, notes: string[]): Promise<void> {
    const inst = f.target === undefined ? undefined : this.cluster.instances[f.target]
    if (inst && f.kind !== 'drop') return this.exclusive(inst, () => this.processFault(f, inst, notes))
    switch (f.kind) {
      case 'redis': {
        const outage = this.ledger.outageStarted('Redis')
        await this.cluster.redis.stop()
        this.hooks.redisDown()
        await sleep(f.downMs)
        await this.cluster.redis.start()
        this.ledger.dependencyBack(outage)
        await this.awaitRecovery(notes)
        this.ledger.outageEnded(outage)
        return
      }
      case 'postgres': {
        const outage = this.ledger.outageStarted('PostgreSQL')
        await this.cluster.pg.stopAsync()
        await sleep(f.downMs)
        await this.cluster.pg.startAsync()
        this.ledger.dependencyBack(outage)
        await this.awaitRecovery(notes)
        this.ledger.outageEnded(outage)
        return
      }
      case 'drop': {
        if (!inst) throw new Error('no target')
        notes.push(`${inst.proxy.drop()} connections reset`)
        return
      }
    }
  }

  private async processFault(f: Fault, inst: Instance, notes: string[]): Promise<void> {
    if (f.kind === 'kill') {
      await inst.kill()
      notes.push('killed')
    } else {
      const slow = this.hooks.slowSends(inst.index, SLOW_BODY_MS)
      await Promise.race([Promise.all(slow.map((s) => s.started)), sleep(5000)])
      const t0 = performance.now()
      const answers = slow.map((s) => s.done.then((a) => `${a} at ${Math.round(performance.now() - t0)} ms`))
      const { ms, exceeded, exit } = await inst.terminate(SHUTDOWN_DEADLINE_MS)
      notes.push(
        `shutdown with ${slow.length} slow REST sends under way took ${(ms / 1000).toFixed(1)} s (exit ${exit.code ?? exit.signal}); ` +
          `their answers after SIGTERM: ${tally(await Promise.all(answers))}`,
      )
      if (exceeded) {
        notes.push('SIGKILL after the deadline')
        this.ledger.violation(
          'shutdown_exceeded_deadline',
          `instance ${inst.index} still running ${SHUTDOWN_DEADLINE_MS / 1000} s after SIGTERM (killed)`,
        )
      } else if (exit.code !== 0) {
        this.ledger.violation(
          'shutdown_failed',
          `instance ${inst.index} exited ${exit.code ?? exit.signal} on SIGTERM`,
        )
      }
    }
    await sleep(f.downMs)
    await this.restart(inst, notes)
  }

  /**
   * Restarts an instance. It needs PostgreSQL and Redis to start (it migrates and subscribes
   * first), so while one is stopped the start is retried without blame; a failed start with
   * both up is a violation.
   */
  private async restart(inst: Instance, notes: string[]): Promise<void> {
    const t0 = performance.now()
    for (let failures = 0; ; ) {
      const duringOutage = this.ledger.dependencyDown()
      try {
        await inst.start(START_TIMEOUT_MS)
        notes.push(`restarted, ready in ${((performance.now() - t0) / 1000).toFixed(1)} s`)
        return
      } catch (err) {
        if (duringOutage || this.ledger.dependencyDown()) {
          notes.push('start failed while a dependency was down; retrying')
          await sleep(1000)
          continue
        }
        this.ledger.violation('restart_failed', `instance ${inst.index}: ${String(err)}`)
        if (++failures >= 3) throw err
      }
    }
  }

  /** Waits until every instance answers /ready with 200 after a dependency came back. */
  private async awaitRecovery(notes: string[]): Promise<void> {
    const t0 = performance.now()
    // An instance that crashed during the outage is being restarted: recovery includes that
    // (one that crashes later simply does not answer /ready until it is back).
    await this.settled()
    const pending = new Set(this.cluster.instances)
    while (pending.size > 0) {
      for (const inst of [...pending]) if ((await readyStatus(inst.port)) === 200) pending.delete(inst)
      if (pending.size === 0) break
      if (performance.now() - t0 > RECOVERY_DEADLINE_MS) {
        const which = [...pending].map((i) => i.index).join(', ')
        this.ledger.violation(
          'no_recovery',
          `instances ${which} not ready ${RECOVERY_DEADLINE_MS / 1000} s after the dependency came back`,
        )
        notes.push(`instances ${which} never became ready`)
        return
      }
      await sleep(100)
    }
    notes.push(`back; every instance ready after ${((performance.now() - t0) / 1000).toFixed(1)} s`)
  }
}
