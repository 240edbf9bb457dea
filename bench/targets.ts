import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import postgres from 'postgres'
import { AccessTokens } from '../src/auth/jwt.js'
import type { Options } from './options.js'
import { Child, RESULTS_DIR, track } from './proc.js'
import { pool, Rest } from './rest.js'
import type { MetricFamily } from './stages.js'
import { WebhookReceiver } from './webhook-receiver.js'

export interface Instance {
  httpUrl: string
  wsUrl: string
  child?: Child
}

export interface BenchUser {
  id: string
  token: string
}

/** What a scenario drives: the chat server (started here or at --url), or the bare relay. */
export interface Target {
  kind: 'chat' | 'relay'
  /** For the report: where the data lives and what carries events. */
  describe: {
    database: string
    broker: string
    instances: number
    started_by_bench: boolean
    malloc?: string
  }
  instances: Instance[]
  /** Users that can sign in, with access tokens. */
  createUsers(count: number): Promise<BenchUser[]>
  /** Raw SQL on the target's database (history seed); undefined when the bench cannot reach it. */
  sql?: (text: string) => Promise<Record<string, unknown>[]>
  /** Server memory (after a GC when `gc`); undefined for servers the bench did not start. */
  stats(instance: number, gc: boolean): Promise<{ rss: number; heapUsed?: number } | undefined>
  /** Server process ids, for the CPU breakdown. */
  pids(): number[]
  /** With --cpu-prof: the servers start profiling now (the measured load begins). */
  profileStart(): Promise<void>
  /** The servers' send-path metrics (stage timings, batch sizes, shed sends, event-loop delay). */
  metrics?: () => Promise<MetricFamily[][]>
  /** With --webhook: the receiver the servers' WEBHOOK_URL points at. */
  webhook?: WebhookReceiver
  stop(): Promise<void>
}

const LISTEN_TIMEOUT_MS = 180_000

const JEMALLOC = [
  '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/aarch64-linux-gnu/libjemalloc.so.2',
  '/usr/lib/libjemalloc.so.2',
]

/** LD_PRELOAD for --malloc jemalloc; fails loudly when the library is missing. */
function allocatorEnv(o: Options): NodeJS.ProcessEnv {
  if (o.malloc !== 'jemalloc') return {}
  const lib = JEMALLOC.find((p) => existsSync(p))
  if (!lib)
    throw new Error('--malloc jemalloc: libjemalloc.so.2 not found (Debian: apt-get install libjemalloc2)')
  return { LD_PRELOAD: lib }
}

export const runId = (): string => randomBytes(4).toString('hex')

function logFile(name: string, id: string): string {
  return join(RESULTS_DIR, 'logs', `${id}-${name}.log`)
}

function tokenSigner(secret: string): AccessTokens {
  return new AccessTokens({
    secrets: secret.split(','),
    issuer: process.env.JWT_ISSUER ?? 'chat-api',
    audience: process.env.JWT_AUDIENCE ?? 'chat-api',
    accessTtlSec: Number(process.env.ACCESS_TOKEN_TTL ?? 86_400),
  })
}

async function signAll(signer: AccessTokens, ids: string[]): Promise<BenchUser[]> {
  const out: BenchUser[] = []
  for (const id of ids) out.push({ id, token: await signer.sign(id) })
  return out
}

/** A database of its own for this run on DATABASE_URL's server, dropped at the end. */
async function scratchDatabase(url: string, id: string): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `bench_${id}`
  const admin = postgres(url, { max: 1, onnotice: () => {} })
  try {
    await admin.unsafe(`create database ${name}`)
  } finally {
    await admin.end()
  }
  const scratch = new URL(url)
  scratch.pathname = `/${name}`
  return {
    url: scratch.toString(),
    drop: async () => {
      const a = postgres(url, { max: 1, onnotice: () => {} })
      await a.unsafe(`drop database if exists ${name} with (force)`).catch(() => undefined)
      await a.end()
    },
  }
}

async function dropRedisKeys(url: string, prefix: string): Promise<void> {
  const { Redis } = await import('ioredis')
  const redis = new Redis(url, { lazyConnect: true, maxRetriesPerRequest: 1 })
  try {
    await redis.connect()
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000)
      cursor = next
      if (keys.length > 0) await redis.del(...keys)
    } while (cursor !== '0')
  } catch {
    // Best effort: the keys carry TTLs or are harmless under a unique prefix.
  } finally {
    redis.disconnect()
  }
}

async function startChild(name: string, script: string, env: NodeJS.ProcessEnv, o: Options, id: string) {
  const child = track(Child.start(name, script, [], { log: logFile(name, id), env, cpuProf: o.cpuProf }))
  const ready = await child.waitFor('listening', LISTEN_TIMEOUT_MS)
  const port = ready.port as number
  return {
    child,
    httpUrl: `http://127.0.0.1:${port}`,
    wsUrl: `ws://127.0.0.1:${port}`,
    describe: { database: String(ready.database ?? ''), broker: String(ready.broker ?? '') },
  }
}

/** Starts `o.instances` chat servers as child processes (PostgreSQL/Redis when their URLs are set). */
export async function startChat(o: Options, id: string, needsRedis: boolean): Promise<Target> {
  const baseUrl = process.env.DATABASE_URL || undefined
  const redisUrl = process.env.REDIS_URL || undefined
  if (o.instances > 1 && !baseUrl)
    throw new Error(`${o.instances} instances need a shared PostgreSQL: set DATABASE_URL`)
  if (needsRedis && !redisUrl)
    throw new Error(`${o.scenario} needs Redis between the instances: set REDIS_URL`)
  const cleanups: (() => Promise<void>)[] = []
  let databaseUrl = baseUrl
  if (baseUrl && !o.reuseDb) {
    const scratch = await scratchDatabase(baseUrl, id)
    databaseUrl = scratch.url
    cleanups.push(scratch.drop)
  }
  const redisPrefix = `bench-${id}`
  if (redisUrl) cleanups.push(() => dropRedisKeys(redisUrl, redisPrefix))
  const secret = randomBytes(48).toString('base64url')
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'production',
    LOG_LEVEL: o.logLevel,
    RATE_LIMITS: 'off',
    JWT_SECRET: secret,
    ACCESS_TOKEN_TTL: '86400',
    // connections opens many sockets per user; the default (20) is an abuse limit, not a capacity one.
    WS_MAX_CONNECTIONS_PER_USER: '100000',
    REDIS_PREFIX: redisPrefix,
    HOST: '127.0.0.1',
    PORT: '0',
    ...allocatorEnv(o),
  }
  const webhook = o.webhook ? new WebhookReceiver() : undefined
  if (webhook) {
    await webhook.start()
    cleanups.push(() => webhook.stop())
    env.WEBHOOK_URL = webhook.url
    env.WEBHOOK_SECRET = `whsec_${randomBytes(32).toString('base64')}`
    env.WEBHOOK_ALLOW_PRIVATE = 'true'
  }
  if (databaseUrl) env.DATABASE_URL = databaseUrl
  else delete env.DATABASE_URL
  if (!redisUrl) delete env.REDIS_URL

  const instances: Instance[] = []
  let describe = { database: '', broker: '' }
  try {
    // The first one migrates; the others start together after it.
    const first = await startChild('server-0', 'server-child.ts', env, o, id)
    describe = first.describe
    instances.push(first)
    const rest = await Promise.all(
      Array.from({ length: o.instances - 1 }, (_, i) =>
        startChild(`server-${i + 1}`, 'server-child.ts', env, o, id),
      ),
    )
    instances.push(...rest)
  } catch (err) {
    await Promise.all(instances.map((i) => i.child?.stop()))
    for (const c of cleanups) await c()
    throw err
  }
  const signer = tokenSigner(secret)
  const admin = instances[0]?.child as Child
  return {
    kind: 'chat',
    describe: { ...describe, instances: instances.length, started_by_bench: true, malloc: o.malloc },
    instances,
    createUsers: async (count) =>
      signAll(signer, await admin.request<string[]>('seedUsers', { count, tag: `u${id}-${runId()}` })),
    sql: (text) => admin.request('sql', { text }),
    stats: async (i, gc) => instances[i]?.child?.request('stats', { gc }),
    pids: () => instances.map((i) => i.child?.pid ?? -1).filter((p) => p > 0),
    profileStart: async () => {
      await Promise.all(instances.map((i) => i.child?.request('profileStart')))
    },
    metrics: () => Promise.all(instances.map((i) => (i.child as Child).request<MetricFamily[]>('metrics'))),
    ...(webhook ? { webhook } : {}),
    stop: async () => {
      await Promise.all(instances.map((i) => i.child?.stop()))
      for (const c of cleanups) await c()
    },
  }
}

/** Servers already running at --url. Users are registered over REST unless DATABASE_URL and JWT_SECRET let the bench insert and sign them. */
export function urlTarget(o: Options): Target {
  const urls = o.url ?? []
  const instances = urls.map((u) => ({ httpUrl: u, wsUrl: u.replace(/^http/, 'ws') }))
  const dbUrl = process.env.DATABASE_URL || undefined
  const secret = process.env.JWT_SECRET || undefined
  const db = dbUrl ? postgres(dbUrl, { max: 4, onnotice: () => {} }) : undefined
  const first = new Rest(urls[0] as string)
  return {
    kind: 'chat',
    describe: {
      database: dbUrl ? 'postgresql (direct access for setup)' : 'unknown',
      broker: 'unknown',
      instances: urls.length,
      started_by_bench: false,
    },
    instances,
    createUsers: async (count) => {
      const tag = `b${runId()}`
      if (db && secret) {
        const { hashPassword } = await import('../src/auth/passwords.js')
        const { newId } = await import('../src/lib/ids.js')
        const hash = await hashPassword('Bench-passw0rd!')
        const ids = Array.from({ length: count }, () => newId())
        for (let i = 0; i < count; i += 1000) {
          const chunk = ids.slice(i, i + 1000).map((uid, j) => ({
            id: uid,
            email: `${tag}-${i + j}@bench.invalid`,
            password_hash: hash,
            full_name: `Bench ${i + j}`,
          }))
          await db`insert into users ${db(chunk)}`
        }
        return signAll(tokenSigner(secret), ids)
      }
      return pool(
        Array.from({ length: count }, (_, i) => i),
        8,
        async (i) => {
          const r = await first.call<{ user: { id: string }; access_token: string }>(
            'POST',
            '/api/v1/auth/register',
            {
              email: `${tag}-${i}@bench.invalid`,
              password: 'Bench-passw0rd!',
              full_name: `Bench ${i}`,
            },
          )
          return { id: r.user.id, token: r.access_token }
        },
      )
    },
    ...(db ? { sql: async (text: string) => [...(await db.unsafe(text))] as Record<string, unknown>[] } : {}),
    stats: async () => undefined,
    pids: () => [],
    profileStart: async () => {},
    stop: async () => {
      await db?.end()
    },
  }
}

/** The `ceiling` relay as a child process. */
export async function startRelay(o: Options, id: string): Promise<Target> {
  const inst = await startChild('relay', 'relay-child.ts', { ...process.env, ...allocatorEnv(o) }, o, id)
  return {
    kind: 'relay',
    describe: { database: 'none', broker: 'none', instances: 1, started_by_bench: true, malloc: o.malloc },
    instances: [inst],
    createUsers: async (count) =>
      Array.from({ length: count }, () => ({ id: crypto.randomUUID(), token: '' })),
    stats: async (_i, _gc) => inst.child.request('stats'),
    pids: () => [inst.child.pid],
    profileStart: async () => {
      await inst.child.request('profileStart')
    },
    stop: () => inst.child.stop(),
  }
}

export function startTarget(o: Options, id: string, needsRedis = false): Promise<Target> {
  return o.url ? Promise.resolve(urlTarget(o)) : startChat(o, id, needsRedis)
}
