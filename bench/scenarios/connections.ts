import { join } from 'node:path'
import { Child, RESULTS_DIR, track } from '../proc.js'
import { table } from '../report.js'
import { pool } from '../rest.js'
import { closeAll, openSocket } from '../sockets.js'
import { startTarget } from '../targets.js'
import type { Context, ScenarioOutput } from './context.js'

/** Sockets one worker process opens at most (its own open-file limit is 20,000 here). */
const PER_WORKER = 15_000

interface WorkerResult {
  opened: number
  failed: number
  elapsed_ms: number
  errors: Record<string, number>
}

/** N idle authenticated sockets: how fast they open and what each costs the server in RSS. */
export async function connections(ctx: Context): Promise<ScenarioOutput> {
  const { o, progress } = ctx
  const target = await startTarget(o, ctx.id)
  const workers: Child[] = []
  try {
    const n = target.instances.length
    const userCount = Math.ceil(o.sockets / o.perUser)
    ctx.status = () => ({ fraction: 0, text: `connections: creating ${userCount} users` })
    const users = await target.createUsers(userCount)
    const wsUrls = target.instances.map((i) => i.wsUrl)

    // Warm up (JIT, pools, first allocations) so the baseline is not taken from a cold process.
    const warm = Math.min(200, Math.max(10, Math.floor(o.sockets / 20)))
    const warmSockets = await pool(
      Array.from({ length: warm }, (_, i) => i),
      20,
      (i) =>
        openSocket(`${wsUrls[i % n]}/api/v1/chat/ws`, {
          headers: { authorization: `Bearer ${users[i % users.length]?.token}` },
        }),
    )
    await closeAll(warmSockets)
    await new Promise((r) => setTimeout(r, 500))
    const before = await Promise.all(target.instances.map((_, i) => target.stats(i, true)))
    await target.profileStart()

    const workerCount = Math.max(1, Math.ceil(o.sockets / PER_WORKER))
    const share = Math.ceil(o.sockets / workerCount)
    const progressOf = new Map<number, { opened: number; failed: number }>()
    const t0 = performance.now()
    ctx.status = () => {
      let opened = 0
      let failed = 0
      for (const p of progressOf.values()) {
        opened += p.opened
        failed += p.failed
      }
      const secs = (performance.now() - t0) / 1000
      return {
        fraction: (opened + failed) / o.sockets,
        text: `connections: ${opened}/${o.sockets} open (${Math.round(opened / Math.max(secs, 0.001))}/s)${failed ? ` FAILED ${failed}` : ''}`,
      }
    }
    const results = await Promise.all(
      Array.from({ length: workerCount }, async (_, w) => {
        const first = w * share
        const count = Math.min(share, o.sockets - first)
        const firstUser = Math.floor(first / o.perUser)
        const lastUser = Math.floor((first + count - 1) / o.perUser)
        const child = track(
          Child.start(`conn-worker-${w}`, 'conn-worker.ts', [], {
            log: join(RESULTS_DIR, 'logs', `${ctx.id}-conn-worker-${w}.log`),
            env: process.env,
          }),
        )
        workers.push(child)
        child.onEvent((m) => {
          if (m.event === 'progress')
            progressOf.set(w, { opened: m.opened as number, failed: m.failed as number })
        })
        await child.waitFor('listening', 60_000)
        return child.request<WorkerResult>('open', {
          wsUrls,
          tokens: users.slice(firstUser, lastUser + 1).map((u) => u.token),
          first,
          firstUser,
          count,
          perUser: o.perUser,
          sourceIps: o.sourceIps,
          concurrency: Math.max(1, Math.ceil(o.concurrency / workerCount)),
        })
      }),
    )
    const openSeconds = (performance.now() - t0) / 1000
    const opened = results.reduce((a, r) => a + r.opened, 0)
    const failed = results.reduce((a, r) => a + r.failed, 0)
    const errors: Record<string, number> = {}
    for (const r of results) for (const [k, v] of Object.entries(r.errors)) errors[k] = (errors[k] ?? 0) + v
    progress.log(
      `  ${opened} sockets open in ${openSeconds.toFixed(1)} s${failed ? `, ${failed} failed` : ''}`,
    )
    ctx.status = () => ({
      fraction: 1,
      text: `connections: holding ${opened} sockets for ${o.holdSeconds} s`,
    })
    await new Promise((r) => setTimeout(r, o.holdSeconds * 1000))
    const after = await Promise.all(target.instances.map((_, i) => target.stats(i, true)))

    const perInstance = target.instances.map((_, i) => {
      const sockets = Array.from({ length: opened }, (_, g) => g).filter((g) => g % n === i).length
      const b = before[i]?.rss
      const a = after[i]?.rss
      return {
        instance: i,
        sockets,
        rss_before_mib: b === undefined ? null : Math.round((b / 2 ** 20) * 10) / 10,
        rss_after_mib: a === undefined ? null : Math.round((a / 2 ** 20) * 10) / 10,
        heap_used_per_socket_kib:
          after[i]?.heapUsed === undefined || before[i]?.heapUsed === undefined || sockets === 0
            ? null
            : Math.round((((after[i]?.heapUsed ?? 0) - (before[i]?.heapUsed ?? 0)) / sockets / 1024) * 100) /
              100,
        rss_per_socket_kib:
          a === undefined || b === undefined || sockets === 0
            ? null
            : Math.round(((a - b) / sockets / 1024) * 100) / 100,
      }
    })
    const kib = perInstance.map((p) => p.rss_per_socket_kib).filter((v): v is number => v !== null)
    const heap = perInstance.map((p) => p.heap_used_per_socket_kib).filter((v): v is number => v !== null)
    for (const w of workers) await w.stop()
    return {
      target: target.describe,
      summary: {
        sockets_requested: o.sockets,
        sockets_open: opened,
        sockets_failed: failed,
        instances: n,
        sockets_per_sec: Math.round(opened / openSeconds),
        open_seconds: Math.round(openSeconds * 10) / 10,
        rss_per_socket_kib: kib.length
          ? Math.round((kib.reduce((a, b) => a + b, 0) / kib.length) * 100) / 100
          : null,
        heap_used_per_socket_kib: heap.length
          ? Math.round((heap.reduce((a, b) => a + b, 0) / heap.length) * 100) / 100
          : null,
        max_sockets_per_instance: Math.max(...perInstance.map((p) => p.sockets)),
      },
      correctness: null,
      details: {
        per_instance: perInstance,
        errors,
        workers: workerCount,
        source_ips: o.sourceIps,
        per_user: o.perUser,
      },
      text: table(
        ['instance', 'sockets', 'RSS before MiB', 'RSS after MiB', 'RSS/socket KiB', 'JS heap/socket KiB'],
        perInstance.map((p) => [
          p.instance,
          p.sockets,
          p.rss_before_mib ?? 'n/a',
          p.rss_after_mib ?? 'n/a',
          p.rss_per_socket_kib ?? 'n/a',
          p.heap_used_per_socket_kib ?? 'n/a',
        ]),
      ),
    }
  } finally {
    for (const w of workers) await w.stop()
    await target.stop()
  }
}
