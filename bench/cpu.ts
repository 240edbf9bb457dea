import { readdirSync, readFileSync } from 'node:fs'

/**
 * CPU time by process group, from /proc (Linux): the generator itself, the servers, PostgreSQL,
 * Redis, and the whole machine. 100% is one core. Shows who is using the 2 cores at each step.
 */
export type CpuGroups = Record<string, number>

export interface CpuSample {
  at: number
  /** pid → [group, ticks] */
  procs: Map<number, [string, number]>
  machine: number
}

const TICK_MS = 10 // USER_HZ is 100 on Linux

function procTicks(pid: number): { comm: string; ticks: number } | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const close = stat.lastIndexOf(')')
    const comm = stat.slice(stat.indexOf('(') + 1, close)
    const fields = stat.slice(close + 2).split(' ')
    return { comm, ticks: Number(fields[11]) + Number(fields[12]) }
  } catch {
    return undefined
  }
}

function machineBusyTicks(): number {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? ''
    const v = line.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    return (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0)
  } catch {
    return 0
  }
}

export function cpuSample(serverPids: number[]): CpuSample {
  const procs = new Map<number, [string, number]>()
  const servers = new Set(serverPids)
  let pids: number[] = []
  try {
    pids = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
  } catch {
    return { at: performance.now(), procs, machine: 0 }
  }
  for (const pid of pids) {
    const p = procTicks(pid)
    if (!p) continue
    const group =
      pid === process.pid
        ? 'bench'
        : servers.has(pid)
          ? 'server'
          : p.comm === 'postgres'
            ? 'postgres'
            : p.comm.startsWith('redis-server')
              ? 'redis'
              : undefined
    if (group) procs.set(pid, [group, p.ticks])
  }
  return { at: performance.now(), procs, machine: machineBusyTicks() }
}

/** Percent of one core per group between two samples (processes that exited meanwhile are not counted). */
export function cpuPercent(a: CpuSample, b: CpuSample): CpuGroups {
  const ms = b.at - a.at
  const ticks: CpuGroups = { bench: 0, server: 0, postgres: 0, redis: 0 }
  for (const [pid, [group, t]] of b.procs)
    ticks[group] = (ticks[group] ?? 0) + t - (a.procs.get(pid)?.[1] ?? 0)
  ticks.machine = b.machine - a.machine
  const out: CpuGroups = {}
  for (const [k, v] of Object.entries(ticks)) out[k] = ms <= 0 ? 0 : Math.round((v * TICK_MS * 100) / ms)
  return out
}
