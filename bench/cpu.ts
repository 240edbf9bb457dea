import { readdirSync, readFileSync } from 'node:fs'

/**
 * CPU time by process group, from /proc (Linux): the generator itself, the servers, PostgreSQL,
 * Redis, and the whole machine. 100% is one core. Shows who is using the 2 cores at each step.
 */
export type CpuGroups = Record<string, number>

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

function machineBusyTicks(): number | undefined {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? ''
    const v = line.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal
    return (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0)
  } catch {
    return undefined
  }
}

export function cpuSample(serverPids: number[]): { at: number; ticks: CpuGroups } {
  const ticks: CpuGroups = { bench: 0, server: 0, postgres: 0, redis: 0 }
  const servers = new Set(serverPids)
  let pids: number[] = []
  try {
    pids = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .map(Number)
  } catch {
    return { at: performance.now(), ticks }
  }
  for (const pid of pids) {
    const p = procTicks(pid)
    if (!p) continue
    if (pid === process.pid) ticks.bench = (ticks.bench ?? 0) + p.ticks
    else if (servers.has(pid)) ticks.server = (ticks.server ?? 0) + p.ticks
    else if (p.comm === 'postgres') ticks.postgres = (ticks.postgres ?? 0) + p.ticks
    else if (p.comm.startsWith('redis-server')) ticks.redis = (ticks.redis ?? 0) + p.ticks
  }
  ticks.machine = machineBusyTicks() ?? 0
  return { at: performance.now(), ticks }
}

/** Percent of one core per group between two samples. */
export function cpuPercent(a: ReturnType<typeof cpuSample>, b: ReturnType<typeof cpuSample>): CpuGroups {
  const ms = b.at - a.at
  const out: CpuGroups = {}
  for (const k of Object.keys(b.ticks)) {
    out[k] = ms <= 0 ? 0 : Math.round((((b.ticks[k] ?? 0) - (a.ticks[k] ?? 0)) * TICK_MS * 100) / ms)
  }
  return out
}
