import { readdir, readFile, readlink } from 'node:fs/promises'
import { rssOf } from '../bench/proc.js'
import { type Cluster, DATABASE_POOL_SIZE } from './cluster.js'
import type { Ledger } from './ledger.js'

/**
 * File descriptors and memory of each instance, from /proc. Every descriptor is classified, so
 * the ones whose number legitimately follows the load can be told from the ones that must stay
 * flat: sockets from the proxy (clients come and go), PostgreSQL pool connections (opened
 * lazily, up to the pool size, dropped by a PostgreSQL restart), and the rest (Redis
 * connections, the listening socket, files, pipes, epoll and event fds), which is `fixed`.
 */
export interface Sample {
  t: number
  pid: number
  total: number
  clients: number
  postgres: number
  redis: number
  fixed: number
  /** Connections the proxy has open to this instance at the same moment. */
  proxied: number
  rss: number
}

/** A process settles (first JIT, pools, first GCs) this long after it is ready; the baseline comes after. */
const WARM_MS = 6000
/** Shorter than this between baseline and end measures nothing useful. */
const MIN_SPAN_MS = 15_000
/**
 * Fixed descriptors may differ by a few between two moments (libuv opens its thread pool's
 * handles and DNS/file handles lazily); a leak per reconnect or per fault grows without bound.
 */
export const FD_TOLERANCE = 5
/**
 * RSS without a forced GC moves by tens of MB as V8 grows and shrinks its heap; the bound is
 * meant to catch gross leaks (per connection, per fault), not to measure the heap.
 */
export const RSS_TOLERANCE_BYTES = 64 * 1024 * 1024
export const RSS_TOLERANCE_RATIO = 0.5

interface TcpEntry {
  local: number
  remote: number
  listening: boolean
}

async function tcpTable(): Promise<Map<string, TcpEntry>> {
  const table = new Map<string, TcpEntry>()
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string
    try {
      text = await readFile(file, 'utf8')
    } catch {
      continue
    }
    for (const line of text.split('\n').slice(1)) {
      const cols = line.trim().split(/\s+/)
      if (cols.length < 10) continue
      const port = (addr: string) => Number.parseInt(addr.split(':')[1] ?? '0', 16)
      table.set(cols[9] as string, {
        local: port(cols[1] as string),
        remote: port(cols[2] as string),
        listening: cols[3] === '0A',
      })
    }
  }
  return table
}

export class ProcSampler {
  /** Samples of each instance's current process (cleared when it is restarted). */
  private readonly samples = new Map<number, Sample[]>()
  private timer: NodeJS.Timeout | undefined
  private busy = false

  constructor(private readonly cluster: Cluster) {}

  start(intervalMs: number): void {
    this.timer = setInterval(() => {
      if (this.busy) return
      this.busy = true
      void this.sampleNow().finally(() => {
        this.busy = false
      })
    }, intervalMs)
  }

  stop(): void {
    clearInterval(this.timer)
  }

  async sampleNow(): Promise<void> {
    const tcp = await tcpTable()
    for (const inst of this.cluster.instances) {
      const pid = inst.pid
      if (pid === undefined) continue
      const s = await this.sample(pid, inst.port, inst.proxy.upstreamConnections, tcp)
      if (!s) continue
      const list = this.samples.get(inst.index) ?? []
      const sameProcess = list.length > 0 && list[0]?.pid === pid
      this.samples.set(inst.index, sameProcess ? [...list, s] : [s])
    }
  }

  private async sample(
    pid: number,
    port: number,
    proxied: number,
    tcp: Map<string, TcpEntry>,
  ): Promise<Sample | undefined> {
    let names: string[]
    try {
      names = await readdir(`/proc/${pid}/fd`)
    } catch {
      return undefined
    }
    const s: Sample = {
      t: performance.now(),
      pid,
      total: 0,
      clients: 0,
      postgres: 0,
      redis: 0,
      fixed: 0,
      proxied,
      rss: 0,
    }
    const pgPort = this.cluster.pg.port
    const redisPort = this.cluster.redis.port
    for (const name of names) {
      const target = await readlink(`/proc/${pid}/fd/${name}`).catch(() => undefined)
      if (target === undefined) continue
      s.total++
      const inode = /^socket:\[(\d+)\]$/.exec(target)?.[1]
      const e = inode === undefined ? undefined : tcp.get(inode)
      if (e && !e.listening && e.local === port) s.clients++
      else if (e && e.remote === pgPort) s.postgres++
      else {
        if (e && e.remote === redisPort) s.redis++
        s.fixed++
      }
    }
    s.rss = (await rssOf(pid)) ?? 0
    return s
  }

  /**
   * Compares each instance's baseline (early in the life of its current process) with its last
   * sample, and records a violation for growth past the tolerances.
   */
  verdicts(ledger: Ledger, log: (s: string) => void): InstanceVerdict[] {
    const out: InstanceVerdict[] = []
    for (const inst of this.cluster.instances) {
      const list = this.samples.get(inst.index) ?? []
      const end = list.at(-1)
      const warm = list.filter((s) => s.t >= inst.startedAt + WARM_MS)
      const baseline = warm[0]
      if (!end || !baseline || end.t - baseline.t < MIN_SPAN_MS) {
        out.push({ instance: inst.index, restarts: inst.starts - 1, measured: false })
        log(`instance ${inst.index}: not measured (its last life was too short for a baseline)`)
        continue
      }
      // The lowest RSS of a few samples at each end: a GC sawtooth is not growth.
      const rssAt = (xs: Sample[]) => Math.min(...xs.map((s) => s.rss))
      const rssBase = rssAt(warm.slice(0, 3))
      const rssEnd = rssAt(list.slice(-3))
      const v: InstanceVerdict = {
        instance: inst.index,
        restarts: inst.starts - 1,
        measured: true,
        span_s: Math.round((end.t - baseline.t) / 1000),
        baseline,
        end,
        fixed_growth: end.fixed - baseline.fixed,
        rss_base_mib: mib(rssBase),
        rss_end_mib: mib(rssEnd),
      }
      out.push(v)
      const who = `instance ${inst.index} (pid ${end.pid}, over ${v.span_s} s)`
      if (end.fixed - baseline.fixed > FD_TOLERANCE)
        ledger.violation('fd_growth', `${who}: fixed fds ${baseline.fixed} → ${end.fixed}`)
      if (end.clients > end.proxied + 2)
        ledger.violation(
          'fd_growth',
          `${who}: ${end.clients} client sockets open, the proxy holds ${end.proxied}`,
        )
      if (end.postgres > DATABASE_POOL_SIZE)
        ledger.violation(
          'fd_growth',
          `${who}: ${end.postgres} PostgreSQL sockets, pool size ${DATABASE_POOL_SIZE}`,
        )
      if (rssEnd - rssBase > Math.max(RSS_TOLERANCE_BYTES, RSS_TOLERANCE_RATIO * rssBase))
        ledger.violation('memory_growth', `${who}: RSS ${mib(rssBase)} → ${mib(rssEnd)} MiB`)
    }
    return out
  }
}

export interface InstanceVerdict {
  instance: number
  restarts: number
  measured: boolean
  span_s?: number
  baseline?: Sample
  end?: Sample
  fixed_growth?: number
  rss_base_mib?: number
  rss_end_mib?: number
}

const mib = (b: number) => Math.round(b / 1048576)
