import { spawnSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type Options, parseOptions, type Scenario, USAGE, UsageError } from './options.js'
import { children, killAll, RESULTS_DIR } from './proc.js'
import { Progress } from './progress.js'
import { correct, correctnessLine, machineInfo, type Result, writeJson } from './report.js'
import { connections } from './scenarios/connections.js'
import type { Context, ScenarioOutput, Status } from './scenarios/context.js'
import { history } from './scenarios/history.js'
import { ceiling, dm, fanout, hot } from './scenarios/messaging-scenarios.js'
import { search } from './scenarios/search.js'
import { rampChart } from './svg.js'
import { runId } from './targets.js'

/** `npm run bench -- <scenario> [options]`: see USAGE in options.ts and docs/performance.md. */

const RUNNERS: Record<Scenario, (ctx: Context) => Promise<ScenarioOutput>> = {
  dm,
  cluster: dm,
  ceiling,
  hot,
  fanout,
  connections,
  history,
  search,
}

/** The generator holds one socket per user: re-run under the hard open-file limit when the soft one is lower. */
function raiseFileLimit(): void {
  if (process.env.BENCH_FILE_LIMIT_RAISED || process.platform !== 'linux') return
  const r = spawnSync('/bin/sh', ['-c', 'echo "$(ulimit -n) $(ulimit -Hn)"'], { encoding: 'utf8' })
  const [soft, hard] = r.stdout.trim().split(' ')
  if (!soft || !hard || soft === hard || soft === 'unlimited') return
  const child = spawnSync(
    '/bin/sh',
    [
      '-c',
      'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"',
      process.execPath,
      ...process.execArgv,
      ...process.argv.slice(1),
    ],
    { stdio: 'inherit', env: { ...process.env, BENCH_FILE_LIMIT_RAISED: '1' } },
  )
  process.exit(child.status ?? 1)
}

function stamp(d: Date): string {
  return d.toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
}

async function main(): Promise<number> {
  if (process.argv.includes('--help') || process.argv.includes('-h')) {
    console.log(USAGE)
    return 0
  }
  let o: Options
  try {
    o = parseOptions(process.argv.slice(2))
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n\n${USAGE}`)
      return 2
    }
    throw err
  }
  raiseFileLimit()
  const started = new Date()
  const id = runId()
  let status: Status = { fraction: 0, text: `${o.scenario}: starting` }
  const progress = new Progress(o.quiet, () => ctx.status())
  const ctx: Context = { o, id, progress, status: () => status }
  const machine = await machineInfo()
  progress.log(
    `bench ${o.scenario}${o.smoke ? ' (smoke)' : ''}: ${machine.cores} cores, load ${machine.load_average_at_start.join(' ')}; ` +
      `database ${o.url ? 'of --url' : process.env.DATABASE_URL ? 'PostgreSQL' : 'embedded PGlite'}, ` +
      `broker ${o.url ? 'of --url' : process.env.REDIS_URL ? 'Redis' : 'in-process'}`,
  )
  progress.start()
  let out: ScenarioOutput
  try {
    out = await RUNNERS[o.scenario](ctx)
  } finally {
    progress.stop()
    status = { fraction: 1, text: 'done' }
  }
  const t = out.target as { database?: string; chat?: { database?: string } }
  if ((t.database ?? t.chat?.database ?? '').startsWith('postgresql') && process.env.DATABASE_URL) {
    const pg = spawnSync('psql', [process.env.DATABASE_URL, '-Atc', 'show server_version'], {
      encoding: 'utf8',
    })
    if (pg.status === 0) machine.postgres = `PostgreSQL ${pg.stdout.trim()}`
  }
  const failedSockets = Number(out.summary.sockets_failed ?? 0)
  const wrongPages = Number(out.summary.wrong_pages ?? 0)
  const base = o.out ?? join(RESULTS_DIR, `${o.scenario}${o.smoke ? '-smoke' : ''}-${stamp(started)}.json`)
  const result: Result = {
    scenario: o.scenario,
    smoke: o.smoke,
    command: `npm run bench -- ${process.argv.slice(2).join(' ')}`,
    started_at: started.toISOString(),
    duration_s: Math.round((Date.now() - started.getTime()) / 100) / 10,
    machine,
    target: out.target,
    options: { ...o },
    ...(out.series ? { series: out.series } : {}),
    summary: out.summary,
    correctness: out.correctness,
    ...(out.details !== undefined ? { details: out.details } : {}),
    ok: correct(out.correctness) && failedSockets === 0 && wrongPages === 0,
  }
  if (out.chart) {
    const svgPath = `${base.replace(/\.json$/, '')}.svg`
    writeFileSync(svgPath, rampChart(out.chart.title, out.chart.series, out.chart.unit))
    result.chart = svgPath
  }
  writeJson(base, result)

  const lines = [
    '',
    `== ${o.scenario}${o.smoke ? ' (smoke)' : ''} — ${machine.cores} cores (${machine.cpu}), ${machine.memory_gib} GiB, node ${machine.node}${machine.postgres ? `, ${machine.postgres}` : ''}`,
    `target: ${JSON.stringify(out.target)}`,
    '',
    out.text,
    '',
    ...Object.entries(out.summary).map(([k, v]) => `${k.padEnd(42)} ${v}`),
  ]
  if (out.correctness) lines.push('', correctnessLine(out.correctness))
  lines.push(
    '',
    `result: ${base}${result.chart ? `\nchart:  ${result.chart}` : ''}`,
    result.ok ? 'OK' : 'FAILED',
  )
  console.log(lines.join('\n'))
  return result.ok ? 0 : 1
}

const onSignal = () => {
  killAll()
  process.exit(130)
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

main().then(
  (code) => {
    killAll()
    process.exit(code)
  },
  (err: unknown) => {
    console.error(`\nbench failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    if (children.size > 0) console.error(`server logs: ${join(RESULTS_DIR, 'logs')}`)
    killAll()
    process.exit(1)
  },
)
