import { mkdirSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import { dirname } from 'node:path'
import type { Correctness, StepResult } from './messaging.js'
import { type ServerView, STAGES } from './stages.js'
import type { Target } from './targets.js'

export interface Machine {
  cpu: string
  cores: number
  memory_gib: number
  kernel: string
  node: string
  postgres?: string
  load_average_at_start: number[]
}

export async function machineInfo(target?: Target): Promise<Machine> {
  const m: Machine = {
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cores: os.cpus().length,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    kernel: `${os.type()} ${os.release()}`,
    node: process.version,
    load_average_at_start: os.loadavg().map((l) => Math.round(l * 100) / 100),
  }
  if (target?.sql && target.describe.database.startsWith('postgresql')) {
    const [row] = await target.sql('select version() as v').catch(() => [])
    if (row?.v) m.postgres = String(row.v).split(' on ')[0]
  }
  return m
}

export interface Result {
  scenario: string
  smoke: boolean
  command: string
  started_at: string
  duration_s: number
  machine: Machine
  target: Target['describe'] | Record<string, unknown>
  options: Record<string, unknown>
  /** Ramp scenarios: one entry per series (ceiling has the relay and the server). */
  series?: { name: string; steps: StepResult[] }[]
  summary: Record<string, number | string | boolean | null>
  correctness: Correctness | null
  details?: unknown
  /** Every correctness counter is zero (and nothing failed). */
  ok: boolean
  chart?: string
}

export function correct(c: Correctness | null): boolean {
  if (!c) return true
  return c.lost === 0 && c.duplicated === 0 && c.out_of_order === 0 && c.seq_gaps === 0 && !c.webhook_lost
}

export function writeJson(path: string, value: unknown): void {
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, `${JSON.stringify(value, null, 2)}\n`)
}

/** A plain aligned table (numbers right-aligned). */
export function table(headers: string[], rows: (string | number)[][]): string {
  const cells = [
    headers,
    ...rows.map((r) => r.map((c) => (typeof c === 'number' ? c.toLocaleString('en-US') : c))),
  ]
  const widths = headers.map((_, i) => Math.max(...cells.map((r) => String(r[i] ?? '').length)))
  const line = (r: (string | number)[], raw: (string | number)[]) =>
    r
      .map((c, i) => {
        const s = String(c ?? '')
        return typeof raw[i] === 'number' ? s.padStart(widths[i] ?? 0) : s.padEnd(widths[i] ?? 0)
      })
      .join('  ')
      .trimEnd()
  const out = [line(cells[0] as string[], headers), widths.map((w) => '-'.repeat(w)).join('  ')]
  rows.forEach((r, i) => {
    out.push(line(cells[i + 1] as (string | number)[], r))
  })
  return out.join('\n')
}

export function stepsTable(steps: StepResult[], unit: 'messages' | 'deliveries'): string {
  return (
    table(
      [
        'offered/s',
        'sent/s',
        'acked/s',
        unit === 'messages' ? 'delivered/s' : 'deliveries/s',
        'p50 ms',
        'p90 ms',
        'p99 ms',
        'p99.9 ms',
        'max ms',
        'drain ms',
        'cpu gen/srv/pg/redis/all %',
        'µs/msg srv/pg/redis',
      ],
      steps.map((s) => [
        s.offered_per_sec,
        s.send_rate,
        s.acked_per_sec,
        unit === 'messages' ? s.messages_per_sec : s.deliveries_per_sec,
        s.latency.p50_ms,
        s.latency.p90_ms,
        s.latency.p99_ms,
        s.latency.p999_ms,
        s.latency.max_ms,
        s.drain_ms,
        `${s.cpu_percent.bench}/${s.cpu_percent.server}/${s.cpu_percent.postgres}/${s.cpu_percent.redis}/${s.cpu_percent.machine}${s.saturated ? ' saturated' : ''}`,
        `${s.cpu_us_per_message.server}/${s.cpu_us_per_message.postgres}/${s.cpu_us_per_message.redis}`,
      ]),
    ) +
    stagesTable(steps) +
    webhookTable(steps)
  )
}

/** With --webhook: what the receiver got per step. */
function webhookTable(steps: StepResult[]): string {
  const withHooks = steps.filter((s) => s.webhook)
  if (withHooks.length === 0) return ''
  return `\n\nwebhook receiver (message.created; lag = commit → received)\n${table(
    ['offered/s', 'acked/s', 'webhooks/s', 'lag p50 ms', 'lag p99 ms', 'lag max ms'],
    withHooks.map((s) => {
      const w = s.webhook as NonNullable<StepResult['webhook']>
      return [
        s.offered_per_sec,
        s.acked_per_sec,
        w.deliveries_per_sec,
        w.lag.p50_ms,
        w.lag.p99_ms,
        w.lag.max_ms,
      ]
    }),
  )}`
}

/** The server's stage breakdown per step (mean / p99 ms), when the target reported one. */
function stagesTable(steps: StepResult[]): string {
  const withView = steps.filter((s) => s.server)
  if (withView.length === 0) return ''
  return `\n\nserver stages, mean/p99 ms (p99 = upper bucket bound)\n${table(
    ['offered/s', ...STAGES, 'batch', 'shed', 'loop p99/max ms', 'gc ms/s'],
    withView.map((s) => {
      const v = s.server as ServerView
      return [
        s.offered_per_sec,
        ...STAGES.map((k) => `${v.stages[k]?.mean_ms ?? 0}/${v.stages[k]?.p99_ms ?? 0}`),
        v.batch_mean,
        v.shed,
        `${v.event_loop_p99_ms}/${v.event_loop_max_ms}`,
        v.gc_ms_per_s,
      ]
    }),
  )}`
}

export function correctnessLine(c: Correctness | null): string {
  if (!c) return ''
  const errors = Object.entries(c.errors)
    .map(([k, v]) => `${k}=${v}`)
    .join(' ')
  return (
    `correctness: sent ${c.sent}, acked ${c.acked}, lost ${c.lost}, duplicated ${c.duplicated}, ` +
    `out-of-order ${c.out_of_order}, seq gaps ${c.seq_gaps}, unexpected closes ${c.unexpected_closes}` +
    (c.webhook_lost === undefined
      ? ''
      : `, webhooks lost ${c.webhook_lost}, repeated ${c.webhook_duplicated}`) +
    `${errors ? `, error frames: ${errors}` : ''} → ${correct(c) ? 'OK' : 'FAILED'}`
  )
}

/**
 * The highest rate any step delivered; the highest of the steps that kept up (sustained: delivered
 * ≥ 90% of offered, p99 ≤ 2 s, drained in time); and the highest with p99 ≤ the bound.
 */
export function rampSummary(steps: StepResult[], unit: 'messages' | 'deliveries', p99BoundMs = 50) {
  const rate = (s: StepResult) => (unit === 'messages' ? s.messages_per_sec : s.deliveries_per_sec)
  const best = steps.reduce<StepResult | undefined>((b, s) => (!b || rate(s) > rate(b) ? s : b), undefined)
  const within = steps.filter((s) => s.latency.p99_ms <= p99BoundMs && !s.saturated)
  const bestWithin = within.reduce<StepResult | undefined>(
    (b, s) => (!b || rate(s) > rate(b) ? s : b),
    undefined,
  )
  const steady = steps.filter((s) => !s.saturated)
  const bestSteady = steady.reduce<StepResult | undefined>(
    (b, s) => (!b || rate(s) > rate(b) ? s : b),
    undefined,
  )
  return {
    [`sustained_${unit}_per_sec`]: bestSteady ? rate(bestSteady) : 0,
    sustained_at_offered: bestSteady?.offered_per_sec ?? 0,
    p99_at_sustained_ms: bestSteady?.latency.p99_ms ?? null,
    [`max_${unit}_per_sec`]: best ? rate(best) : 0,
    max_at_offered: best?.offered_per_sec ?? 0,
    p99_at_max_ms: best?.latency.p99_ms ?? null,
    [`max_${unit}_per_sec_p99_le_${p99BoundMs}ms`]: bestWithin ? rate(bestWithin) : 0,
  }
}
