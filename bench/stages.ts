import type { CpuGroups } from './cpu.js'

/**
 * The server's own view of a step, from its send-path metrics read before and after the step
 * (`metrics` over IPC, the same registry as /metrics): where a send's time goes by stage, batch
 * sizes, sends shed, event-loop delay, GC time; and the CPU each process spends per delivered
 * message, from the step's CPU split.
 */

/** prom-client's `getMetricsAsJSON()` entry, as far as it is read here. */
export interface MetricFamily {
  name: string
  values: { value: number; labels: Record<string, string | number>; metricName?: string }[]
}

export interface StageFigure {
  /** Observations in the step. */
  count: number
  mean_ms: number
  /** Upper bound of the bucket holding the 99th percentile. */
  p99_ms: number
}

export interface ServerView {
  stages: Record<string, StageFigure>
  batch_mean: number
  shed: number
  /** The worst instance's event-loop delay over the step. */
  event_loop_p99_ms: number
  event_loop_max_ms: number
  gc_ms_per_s: number
}

export const STAGES = ['receive', 'queue', 'transaction', 'publish', 'write', 'total'] as const

type Flat = Map<string, number>

/** Every sample of every instance, summed by metric name and labels. */
function flatten(instances: MetricFamily[][]): Flat {
  const out: Flat = new Map()
  for (const families of instances)
    for (const f of families)
      for (const v of f.values) {
        const labels = Object.entries(v.labels)
          .map(([k, l]) => `${k}=${l}`)
          .sort()
          .join(',')
        const key = `${v.metricName ?? f.name}{${labels}}`
        out.set(key, (out.get(key) ?? 0) + v.value)
      }
  return out
}

function worst(instances: MetricFamily[][], name: string): number {
  let w = 0
  for (const families of instances)
    for (const f of families) if (f.name === name) for (const v of f.values) w = Math.max(w, v.value)
  return w
}

const diff = (a: Flat, b: Flat, key: string) => (b.get(key) ?? 0) - (a.get(key) ?? 0)

function histogram(a: Flat, b: Flat, name: string, labels: string): StageFigure {
  const count = diff(a, b, `${name}_count{${labels}}`)
  const sum = diff(a, b, `${name}_sum{${labels}}`)
  const buckets: [number, number][] = []
  const prefix = `${name}_bucket{`
  for (const key of b.keys()) {
    if (!key.startsWith(prefix)) continue
    const parts = key.slice(prefix.length, -1).split(',')
    if (labels && !parts.includes(labels)) continue
    const le = parts.find((p) => p.startsWith('le='))?.slice(3)
    if (le === undefined || le === '+Inf') continue
    buckets.push([Number(le), diff(a, b, key)])
  }
  buckets.sort((x, y) => x[0] - y[0])
  const p99 = buckets.find(([, n]) => n >= 0.99 * count)?.[0] ?? Number.POSITIVE_INFINITY
  return {
    count,
    mean_ms: count > 0 ? Math.round((sum / count) * 1e6) / 1e3 : 0,
    p99_ms: count > 0 ? p99 * 1e3 : 0,
  }
}

export function serverView(before: MetricFamily[][], after: MetricFamily[][], seconds: number): ServerView {
  const a = flatten(before)
  const b = flatten(after)
  const stages: Record<string, StageFigure> = {}
  for (const s of STAGES) stages[s] = histogram(a, b, 'chat_message_stage_seconds', `stage=${s}`)
  const batches = histogram(a, b, 'chat_message_batch_size', '')
  const batchSum = diff(a, b, 'chat_message_batch_size_sum{}')
  let gc = 0
  for (const key of b.keys()) if (key.startsWith('nodejs_gc_duration_seconds_sum')) gc += diff(a, b, key)
  return {
    stages,
    batch_mean: batches.count > 0 ? Math.round((batchSum / batches.count) * 10) / 10 : 0,
    shed: diff(a, b, 'chat_sends_shed_total{reason=queue_full}'),
    event_loop_p99_ms: Math.round(worst(after, 'nodejs_eventloop_lag_p99_seconds') * 1e4) / 10,
    event_loop_max_ms: Math.round(worst(after, 'nodejs_eventloop_lag_max_seconds') * 1e4) / 10,
    gc_ms_per_s: Math.round((gc * 1e3) / Math.max(seconds, 1e-3)),
  }
}

/**
 * µs of CPU per delivered message, by process group (server, postgres, redis, bench); 0 when
 * under 10 messages/s were delivered (the quotient would be noise).
 */
export function cpuPerMessage(cpu: CpuGroups, messagesPerSec: number): CpuGroups {
  const out: CpuGroups = {}
  for (const k of ['server', 'postgres', 'redis', 'bench'])
    out[k] = messagesPerSec >= 10 ? Math.round(((cpu[k] ?? 0) * 1e4) / messagesPerSec) : 0
  return out
}
