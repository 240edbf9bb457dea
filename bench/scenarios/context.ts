import type { Correctness, StepResult } from '../messaging.js'
import type { Options } from '../options.js'
import type { Progress } from '../progress.js'
import type { ChartSeries } from '../svg.js'
import type { Target } from '../targets.js'

export interface Status {
  fraction: number
  text: string
}

/** What every scenario gets: options, a run id, the progress bar and its status line. */
export interface Context {
  o: Options
  id: string
  progress: Progress
  /** Replaced by the scenario to drive the progress bar. */
  status: () => Status
}

export interface ScenarioOutput {
  target: Target['describe'] | Record<string, unknown>
  series?: { name: string; steps: StepResult[] }[]
  summary: Record<string, number | string | boolean | null>
  correctness: Correctness | null
  details?: unknown
  chart?: { title: string; unit: string; series: ChartSeries[] }
  /** Human-readable tables for the terminal. */
  text: string
  /** Extra machine facts known only once the target runs (PostgreSQL version). */
  postgres?: string
}

export const chartSeries = (
  name: string,
  steps: StepResult[],
  unit: 'messages' | 'deliveries',
): ChartSeries => ({
  name,
  points: steps.map((s) => ({
    offered: unit === 'messages' ? s.offered_per_sec : s.offered_per_sec * s.recipients_per_message,
    delivered: unit === 'messages' ? s.messages_per_sec : s.deliveries_per_sec,
    p50: s.latency.p50_ms,
    p99: s.latency.p99_ms,
  })),
})

/** "PostgreSQL + Redis", "embedded PGlite + in-process broker", ... for titles. */
export function setupLabel(d: Target['describe']): string {
  const db = d.database.startsWith('postgresql')
    ? 'PostgreSQL'
    : d.database.startsWith('pglite')
      ? 'embedded PGlite'
      : d.database
  const broker = d.broker === 'redis' ? 'Redis' : d.broker === 'memory' ? 'in-process broker' : d.broker
  return `${db} + ${broker}`
}
