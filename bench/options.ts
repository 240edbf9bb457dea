/** Command-line options of `npm run bench -- <scenario> [options]`, with per-scenario defaults. */

export const SCENARIOS = [
  'dm',
  'hot',
  'fanout',
  'connections',
  'history',
  'search',
  'cluster',
  'ceiling',
] as const
export type Scenario = (typeof SCENARIOS)[number]

export interface Options {
  scenario: Scenario
  smoke: boolean
  /** Target servers already running (one per instance); unset: the bench starts its own. */
  url: string[] | undefined
  /** Users (dm, cluster, ceiling): one socket each, paired into users/2 direct conversations. */
  users: number
  /** Offered load per ramp step: messages/s. */
  steps: number[]
  stepSeconds: number
  /** Longest wait after a step for every sent message to be acked and delivered. */
  drainSeconds: number
  /** Content length of each message, characters. */
  size: number
  /** hot: members that all send; fanout: members that send. */
  senders: number
  /** fanout: group size, sender included. */
  members: number
  /** Stop the ramp at the first step that is saturated (delivered < 90% of offered, or p99 > 2 s). */
  stopOnSaturation: boolean
  /** connections: sockets to open, sockets per user, source addresses 127.0.0.1.. used. */
  sockets: number
  perUser: number
  sourceIps: number
  /** connections: sockets being opened at once. */
  concurrency: number
  /** connections: seconds to hold the idle sockets before measuring RSS. */
  holdSeconds: number
  /** Server instances the bench starts (cluster: 2; connections may use 3). */
  instances: number
  /** history: messages in the conversation; depths to page at; requests per (mode, depth). */
  messages: number
  depths: number[]
  requests: number
  skipRequests: number
  /** Result JSON path (default bench/results/<scenario>-<time>.json). */
  out: string | undefined
  quiet: boolean
  /** Pass --cpu-prof to the server processes (profiles land in bench/results/prof/). */
  cpuProf: boolean
  /** Use DATABASE_URL's database as it is instead of a scratch database on the same server. */
  reuseDb: boolean
  logLevel: string
  /** Server processes' allocator: the system's (glibc) or jemalloc through LD_PRELOAD. */
  malloc: 'system' | 'jemalloc'
  /** Point the servers' WEBHOOK_URL at a receiver in the bench: the outbox's cost and delivery rate. */
  webhook: boolean
}

type Defaults = Partial<Omit<Options, 'scenario' | 'smoke' | 'url' | 'out'>>

const base: Omit<Options, 'scenario' | 'smoke' | 'url' | 'out'> = {
  users: 1000,
  steps: [1000, 2500, 5000, 10000, 15000, 20000, 25000, 30000],
  stepSeconds: 10,
  drainSeconds: 30,
  size: 64,
  senders: 20,
  members: 1000,
  stopOnSaturation: true,
  sockets: 19000,
  perUser: 10,
  sourceIps: 4,
  concurrency: 200,
  holdSeconds: 20,
  instances: 1,
  messages: 1_000_000,
  depths: [0, 10_000, 500_000],
  requests: 300,
  skipRequests: 30,
  quiet: false,
  cpuProf: false,
  reuseDb: false,
  logLevel: 'warn',
  malloc: 'system',
  webhook: false,
}

const perScenario: Record<Scenario, Defaults> = {
  dm: {},
  cluster: { instances: 2 },
  ceiling: {},
  hot: { senders: 20, steps: [1000, 2500, 5000, 7500, 10000, 15000] },
  fanout: { members: 1000, senders: 1, steps: [25, 50, 100, 150, 200, 300] },
  connections: {},
  history: {},
  search: { requests: 200 },
}

/** --smoke: each scenario tiny, seconds long (CI runs these; figures mean nothing). */
const smoke: Record<Scenario, Defaults> = {
  dm: { users: 20, steps: [100, 200], stepSeconds: 1, drainSeconds: 15 },
  cluster: { users: 20, steps: [100, 200], stepSeconds: 1, drainSeconds: 15 },
  ceiling: { users: 20, steps: [100, 200], stepSeconds: 1, drainSeconds: 15 },
  hot: { senders: 4, steps: [200], stepSeconds: 1.5, drainSeconds: 15 },
  fanout: { members: 30, senders: 2, steps: [20], stepSeconds: 1, drainSeconds: 15 },
  connections: { sockets: 100, perUser: 5, sourceIps: 2, holdSeconds: 0.5, concurrency: 20 },
  history: { messages: 20_000, depths: [0, 1000, 10_000], requests: 10, skipRequests: 5 },
  search: { messages: 20_000, requests: 10 },
}

export const USAGE = `usage: npm run bench -- <scenario> [options]

scenarios:
  dm           U users (--users, 1000) in U/2 direct conversations, one socket each; ramps the offered rate
  hot          --senders members (20) all sending into one group: gapless seq under contention
  fanout       one group of --members (1000), --senders (1) sending; deliveries/s
  connections  --sockets (19000) idle authenticated sockets: sockets/s and server RSS per socket
  history      one conversation of --messages (1,000,000): page latency by depth, keyset vs skip/limit
  search       --messages (1,000,000) in 1,000 conversations; a member of 50 searches (words, prefixes, substrings)
  cluster      dm with users split over --instances (2) through Redis (needs DATABASE_URL and REDIS_URL)
  ceiling      the dm ramp against a bare ws relay (no auth, no storage), then against the server: the ratio

options:
  --smoke                 tiny and fast (seconds); what CI runs
  --users N  --size CHARS  --senders N  --members N
  --steps R1,R2,...       offered messages/s per ramp step     --step-seconds S (10)
  --rate R --duration S   one step at R messages/s for S seconds
  --no-stop               run every step even past saturation  --drain-seconds S (30)
  --sockets N --per-user N --source-ips K --concurrency N --hold-seconds S   (connections)
  --messages N --depths D1,D2 --requests N --skip-requests N                 (history)
  --instances N           servers to start (cluster 2; connections: e.g. 3)
  --url URL[,URL...]      target running servers instead (they need RATE_LIMITS=off)
  --out FILE              result JSON path (default bench/results/<scenario>-<time>.json)
  --cpu-prof              write V8 CPU profiles of the servers to bench/results/prof/
  --reuse-db              use DATABASE_URL's database itself, not a scratch one beside it
  --log-level LEVEL       server log level (warn)   --quiet   no progress bar
  --malloc jemalloc       run the servers on jemalloc (LD_PRELOAD; Debian: libjemalloc2) instead of glibc malloc
  --webhook               WEBHOOK_URL → a receiver in the bench: webhook deliveries/s and lag per step

environment: DATABASE_URL (PostgreSQL; unset: embedded PGlite), REDIS_URL (unset: in-process broker),
  JWT_SECRET (with --url: sign tokens instead of registering users), MESSAGE_BATCH_MAX, DATABASE_POOL_SIZE.`

export class UsageError extends Error {}

const numberList = (v: string): number[] =>
  v.split(',').map((s) => {
    const n = Number(s.trim())
    if (!Number.isFinite(n) || n < 0) throw new UsageError(`not a number: ${s}`)
    return n
  })

export function parseOptions(argv: string[]): Options {
  const [scenario, ...rest] = argv
  if (!scenario || !(SCENARIOS as readonly string[]).includes(scenario)) {
    throw new UsageError(scenario ? `unknown scenario: ${scenario}` : 'no scenario given')
  }
  const flags = new Map<string, string | true>()
  for (let i = 0; i < rest.length; i++) {
    const arg = rest[i] as string
    if (!arg.startsWith('--')) throw new UsageError(`unexpected argument: ${arg}`)
    const eq = arg.indexOf('=')
    if (eq > 0) flags.set(arg.slice(2, eq), arg.slice(eq + 1))
    else if (rest[i + 1] !== undefined && !(rest[i + 1] as string).startsWith('--'))
      flags.set(arg.slice(2), rest[++i] as string)
    else flags.set(arg.slice(2), true)
  }
  const s = scenario as Scenario
  const isSmoke = flags.get('smoke') === true
  const o: Options = {
    ...base,
    ...perScenario[s],
    ...(isSmoke ? smoke[s] : {}),
    scenario: s,
    smoke: isSmoke,
    url: undefined,
    out: undefined,
  }
  const take = (name: string): string | undefined => {
    const v = flags.get(name)
    flags.delete(name)
    if (v === true) throw new UsageError(`--${name} needs a value`)
    return v
  }
  const flag = (name: string): boolean => {
    const v = flags.get(name)
    flags.delete(name)
    if (v !== undefined && v !== true) throw new UsageError(`--${name} takes no value`)
    return v === true
  }
  const num = (name: string, min = 0): number | undefined => {
    const v = take(name)
    if (v === undefined) return undefined
    const n = Number(v)
    if (!Number.isFinite(n) || n < min)
      throw new UsageError(`--${name}: expected a number ≥ ${min}, got ${v}`)
    return n
  }
  flag('smoke')
  o.users = num('users', 2) ?? o.users
  if (o.users % 2 === 1) o.users++
  o.size = num('size', 24) ?? o.size
  o.senders = num('senders', 1) ?? o.senders
  o.members = num('members', 2) ?? o.members
  const steps = take('steps')
  if (steps !== undefined) o.steps = numberList(steps)
  o.stepSeconds = num('step-seconds', 0.1) ?? o.stepSeconds
  const rate = num('rate', 1)
  if (rate !== undefined) o.steps = [rate]
  o.stepSeconds = num('duration', 0.1) ?? o.stepSeconds
  o.drainSeconds = num('drain-seconds', 1) ?? o.drainSeconds
  if (flag('no-stop')) o.stopOnSaturation = false
  o.sockets = num('sockets', 1) ?? o.sockets
  o.perUser = num('per-user', 1) ?? o.perUser
  o.sourceIps = Math.min(254, num('source-ips', 1) ?? o.sourceIps)
  o.concurrency = num('concurrency', 1) ?? o.concurrency
  o.holdSeconds = num('hold-seconds', 0) ?? o.holdSeconds
  o.instances = num('instances', 1) ?? o.instances
  o.messages = num('messages', 100) ?? o.messages
  const depths = take('depths')
  if (depths !== undefined) o.depths = numberList(depths)
  o.requests = num('requests', 1) ?? o.requests
  o.skipRequests = num('skip-requests', 1) ?? o.skipRequests
  const url = take('url')
  if (url !== undefined) o.url = url.split(',').map((u) => u.trim().replace(/\/$/, ''))
  o.out = take('out')
  o.quiet = flag('quiet')
  o.cpuProf = flag('cpu-prof')
  o.reuseDb = flag('reuse-db')
  o.logLevel = take('log-level') ?? o.logLevel
  const malloc = take('malloc') ?? o.malloc
  if (malloc !== 'system' && malloc !== 'jemalloc') throw new UsageError('--malloc: system or jemalloc')
  o.malloc = malloc
  o.webhook = flag('webhook')
  if (flags.size > 0) throw new UsageError(`unknown option: --${[...flags.keys()][0]}`)
  if (o.steps.length === 0 || o.steps.some((r) => r <= 0)) throw new UsageError('--steps must be positive')
  if (o.senders > o.members && s === 'fanout') throw new UsageError('--senders cannot exceed --members')
  if (o.url) o.instances = o.url.length
  return o
}
