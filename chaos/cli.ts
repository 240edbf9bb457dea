import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { ROOT_DIR } from './build.js'
import { formatReport } from './report.js'
import { live, type RunOptions, runChaos } from './run.js'

const USAGE = `npm run chaos -- --seed N --minutes M [options]

Starts 2 or 3 instances on a private PostgreSQL and Redis, drives users through a TCP proxy in
front of each instance, injects faults from a schedule drawn from the seed, and checks the
invariants at the end (docs/reliability.md). Exits 1 on any violation.

  --seed N          the schedule's seed (default: random, printed)
  --minutes M       load time, faults included (default 1; fractions allowed)
  --instances 2|3   chat instances (default 2)
  --users N         users (default 8): a ring of direct chats and one group of everyone
  --rate R          messages per second offered by all users together (default 12)
  --json FILE       also write the result as JSON
  --logs DIR        instance logs (default chaos/results/logs/seed-N-<time>)`

class UsageError extends Error {}

function parse(argv: string[]): RunOptions & { json?: string } {
  const o: RunOptions & { json?: string } = {
    seed: Math.floor(Math.random() * 2 ** 31),
    minutes: 1,
    instances: 2,
    users: 8,
    rate: 12,
    logDir: '',
  }
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i] as string
    const value = argv[i + 1]
    if (value === undefined) throw new UsageError(`${flag} needs a value`)
    const num = () => {
      const n = Number(value)
      if (!Number.isFinite(n) || n <= 0) throw new UsageError(`${flag}: "${value}" is not a positive number`)
      return n
    }
    switch (flag) {
      case '--seed':
        o.seed = Math.floor(num()) >>> 0
        break
      case '--minutes':
        o.minutes = num()
        break
      case '--instances':
        o.instances = num()
        if (o.instances !== 2 && o.instances !== 3) throw new UsageError('--instances must be 2 or 3')
        break
      case '--users':
        o.users = Math.floor(num())
        if (o.users < 3) throw new UsageError('--users must be at least 3')
        break
      case '--rate':
        o.rate = num()
        break
      case '--json':
        o.json = value
        break
      case '--logs':
        o.logDir = value
        break
      default:
        throw new UsageError(`unknown option ${flag}`)
    }
    i++
  }
  if (!o.logDir) {
    const stamp = new Date().toISOString().replace(/[-:]/g, '').replace('T', '-').slice(0, 15)
    o.logDir = join(ROOT_DIR, 'chaos', 'results', 'logs', `seed-${o.seed}-${stamp}`)
  }
  return o
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2)
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(USAGE)
    return 0
  }
  let o: ReturnType<typeof parse>
  try {
    o = parse(argv)
  } catch (err) {
    if (err instanceof UsageError) {
      console.error(`${err.message}\n\n${USAGE}`)
      return 2
    }
    throw err
  }
  const { json, ...options } = o
  const result = await runChaos(options, (line) => console.log(line))
  console.log(formatReport(result))
  if (json) {
    mkdirSync(dirname(json), { recursive: true })
    writeFileSync(json, `${JSON.stringify(result, null, 2)}\n`)
  }
  return result.violation_count === 0 ? 0 : 1
}

// An interrupted run must not leave servers behind (PostgreSQL daemonizes: it would outlive us).
const onSignal = () => {
  live.cluster?.killNow()
  process.exit(130)
}
process.on('SIGINT', onSignal)
process.on('SIGTERM', onSignal)

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    console.error(`\nchaos run failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`)
    live.cluster?.killNow()
    process.exit(1)
  },
)
