import { readFileSync } from 'node:fs'
import { type Result, rampSummary } from './report.js'

/**
 * `npx tsx bench/aggregate.ts <result.json>...`: the median and min–max of every numeric summary
 * figure over repeated runs of the same command (docs/performance.md reports the median of 3).
 */
const files = process.argv.slice(2)
if (files.length === 0) {
  console.error('usage: tsx bench/aggregate.ts <result.json>...')
  process.exit(2)
}
const groups = new Map<string, Result[]>()
for (const f of files) {
  const r = JSON.parse(readFileSync(f, 'utf8')) as Result
  const key = r.command.replace(/ --(quiet|out \S+)/g, '')
  groups.set(key, [...(groups.get(key) ?? []), r])
}
const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  const m = Math.floor(s.length / 2)
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2
}
const fmt = (n: number) => (Number.isInteger(n) ? n.toLocaleString('en-US') : n.toFixed(n < 10 ? 2 : 1))
for (const [command, runs] of groups) {
  console.log(
    `\n${command}  (${runs.length} run${runs.length > 1 ? 's' : ''}; ok: ${runs.map((r) => r.ok).join(', ')})`,
  )
  console.log(`  load at start: ${runs.map((r) => r.machine.load_average_at_start[0]).join(', ')}`)
  // Ramp figures are recomputed from the steps, so older result files get the newer summary keys.
  for (const r of runs) {
    for (const [i, s] of (r.series ?? []).entries()) {
      const unit = r.scenario === 'fanout' ? 'deliveries' : 'messages'
      const prefix = (r.series?.length ?? 0) > 1 ? `${i === 0 ? 'dm' : 'relay'}_` : ''
      for (const [k, v] of Object.entries(rampSummary(s.steps, unit))) r.summary[`${prefix}${k}`] = v
      for (const rate of [5000, 10000]) {
        const st = s.steps.find((x) => x.offered_per_sec === rate)
        if (st) r.summary[`${prefix}p99_ms_at_${rate}`] = st.latency.p99_ms
      }
    }
  }
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.summary)))]
  for (const k of keys) {
    const xs = runs.map((r) => r.summary[k]).filter((v): v is number => typeof v === 'number')
    if (xs.length === 0) continue
    const range = xs.length > 1 ? ` (${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))})` : ''
    console.log(`  ${k.padEnd(44)} ${fmt(median(xs))}${range}`)
  }
  const c = runs.map((r) => r.correctness).filter((x) => x !== null)
  if (c.length > 0) {
    const sum = (k: 'lost' | 'duplicated' | 'out_of_order' | 'seq_gaps' | 'acked') =>
      c.reduce((a, x) => a + (x?.[k] ?? 0), 0)
    console.log(
      `  correctness over all runs: acked ${sum('acked')}, lost ${sum('lost')}, duplicated ${sum('duplicated')}, out-of-order ${sum('out_of_order')}, seq gaps ${sum('seq_gaps')}`,
    )
  }
}
