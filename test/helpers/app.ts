import { mkdtempSync, rmSync } from 'node:fs'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { buildApp } from '../../src/app.js'
import { keyId } from '../../src/auth/jwt.js'
import { RedisBroker } from '../../src/broker/redis.js'
import { scanTargets } from '../../src/broker/redis-client.js'
import { type Config, loadConfig } from '../../src/config/config.js'
import { createLogger } from '../../src/observability/logger.js'
import type { Services } from '../../src/services/index.js'
import type { Broker } from '../../src/services/ports.js'
import type { Database } from '../../src/store/db.js'
import { createServices, infrastructure, memoryInfrastructure, readsFor } from '../../src/wiring.js'
import { OpenApiContract, type OpenApiDocument, recordCoverage, watch } from './contract.js'
import { type Driver, openTestDatabase } from './database.js'

// Kept in database.ts so that database-only tests need not import the whole app; re-exported here.
export { DRIVERS, type Driver, openTestDatabase } from './database.js'

export const TEST_SECRET = 'test-secret-that-is-long-enough-for-hs256-0123456789'
/** The `kid` the app puts in tokens signed with TEST_SECRET (forged tokens need it to be accepted). */
export const TEST_KID = keyId(TEST_SECRET)

/** A config as production would parse it, with test-friendly overrides. */
export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({
    NODE_ENV: 'test',
    JWT_SECRET: TEST_SECRET,
    LOG_LEVEL: 'silent',
    RATE_LIMITS: 'off',
    ...env,
  })
}

export interface TestApp {
  app: FastifyInstance
  services: Services
  database: Database
  /** Base URL once `listen()` was called (for WebSocket tests). */
  url: string
  /** Checks every request and response against /openapi.json; `close()` fails on any violation. */
  contract: OpenApiContract
  listen(): Promise<string>
  close(): Promise<void>
}

/**
 * Builds the real app on a real database. Pass `database` to share one (e.g. one PGlite per
 * file, or several instances on one PostgreSQL); the app then leaves it open on close.
 */
export async function startTestApp(
  opts: {
    driver?: Driver
    database?: Database
    broker?: Broker
    env?: Record<string, string>
    /** The clock of time-based limits (login holds), so a test moves time instead of waiting. */
    clock?: () => number
    /** The retention job's clock, so a test moves days instead of waiting them. */
    now?: () => Date
    /** Checks traffic against this document instead of the app's own (tests of the checker itself). */
    contractDocument?: (doc: OpenApiDocument) => OpenApiDocument
  } = {},
): Promise<TestApp> {
  const database = opts.database ?? (await openTestDatabase(opts.driver ?? 'postgres'))
  // Attachments stored on local disk go to a directory of this app's own, removed on close.
  const dataDir = opts.env?.DATA_DIR ? undefined : mkdtempSync(join(tmpdir(), 'chat-test-data-'))
  const config = testConfig({ ...(dataDir ? { DATA_DIR: dataDir } : {}), ...opts.env })
  const logger = createLogger('silent')
  // With REDIS_URL in env, the instance uses Redis exactly as production does (broker and shared stores).
  const infra = opts.broker
    ? memoryInfrastructure(config, opts.broker)
    : config.redisUrl || config.redisClusterNodes.length > 0
      ? await infrastructure(config, logger)
      : memoryInfrastructure(config)
  const broker = infra.broker
  // With DATABASE_READ_URL in env, replica-eligible reads go to that replica, as in production.
  const reads = readsFor(config, database, logger)
  const services = createServices(config, database, infra, { clock: opts.clock, reads, now: opts.now })
  const app = await buildApp(services, logger)
  let contract: OpenApiContract | undefined
  // Hooks cannot be added once the app is ready, and the document exists only then.
  watch(app, () => contract)
  await app.ready()
  const served = structuredClone(app.swagger()) as unknown as OpenApiDocument
  contract = new OpenApiContract(opts.contractDocument ? opts.contractDocument(served) : served)
  const t: TestApp = {
    app,
    services,
    database,
    contract,
    url: '',
    listen: async () => {
      await app.listen({ port: 0, host: '127.0.0.1' })
      t.url = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`
      return t.url
    },
    close: async () => {
      await app.close()
      await infra.presence.close()
      await infra.leases.close()
      if (broker instanceof RedisBroker) await deleteKeys(broker, config.redisPrefix)
      if (!opts.broker) await broker.close()
      await reads.close()
      if (!opts.database) await database.close()
      if (dataDir) rmSync(dataDir, { recursive: true, force: true })
      recordCoverage('http', contract.counts)
      if (contract.violations.length > 0) {
        const unique = [...new Set(contract.violations)]
        throw new Error(`traffic broke /openapi.json (${unique.length} kinds):\n${unique.join('\n')}`)
      }
    },
  }
  return t
}

let counter = 0
/** Registers a user through the API and returns its id and tokens. */
export async function registerUser(app: FastifyInstance, name = 'User') {
  counter++
  const email = `${name.toLowerCase().replace(/\W/g, '')}.${process.pid}.${Date.now()}.${counter}@example.com`
  const res = await app.inject({
    method: 'POST',
    url: '/api/v1/auth/register',
    payload: { email, password: 'Sup3r-secret!', full_name: `${name} ${counter}` },
  })
  if (res.statusCode !== 201) throw new Error(`register failed: ${res.statusCode} ${res.body}`)
  const body = res.json()
  return {
    id: body.user.id as string,
    email,
    password: 'Sup3r-secret!',
    token: body.access_token as string,
    refresh: body.refresh_token as string,
    auth: { authorization: `Bearer ${body.access_token}` },
  }
}

export type TestUser = Awaited<ReturnType<typeof registerUser>>

/** The Redis tests use; CI points it at its own server. */
export const redisUrl = (): string => process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379'

/** A key prefix no other test (or run) shares. */
export const uniquePrefix = (name: string): string =>
  `test:${name}:${process.pid}:${Date.now().toString(36)}:${Math.random().toString(36).slice(2, 8)}`

/** Where instances find Redis: one server (`url`) or a cluster (`clusterNodes`, REDIS_CLUSTER_NODES). */
export type TestRedis = { url: string; prefix: string } | { clusterNodes: string; prefix: string }

/** The env that points an instance at `redis`. */
export const redisEnv = (redis: TestRedis): Record<string, string> =>
  'url' in redis
    ? { REDIS_URL: redis.url, REDIS_PREFIX: redis.prefix }
    : { REDIS_CLUSTER_NODES: redis.clusterNodes, REDIS_PREFIX: redis.prefix }

/**
 * `count` listening instances sharing one fresh PostgreSQL database and one Redis or Redis
 * Cluster (as behind a load balancer), configured by `extraEnv` too. `close` stops them all and
 * drops the database.
 */
export async function startInstances(count: number, redis: TestRedis, extraEnv: Record<string, string> = {}) {
  const database = await openTestDatabase('postgres')
  const env = { ...extraEnv, ...redisEnv(redis) }
  const nodes: TestApp[] = []
  for (let i = 0; i < count; i++) {
    const node = await startTestApp({ database, env })
    await node.listen()
    nodes.push(node)
  }
  return {
    nodes,
    /** REDIS_PREFIX of these instances: every key and channel of theirs starts with it. */
    prefix: redis.prefix,
    node: (i: number) => nodes[i] as TestApp,
    close: async () => {
      for (const n of nodes) await n.close()
      await database.close()
    },
  }
}

/** Leaves the shared Redis as it was: every key under the test's own prefix goes (on every shard). */
async function deleteKeys(broker: RedisBroker, prefix: string): Promise<void> {
  if (broker.commands.status !== 'ready') return
  for (const redis of scanTargets(broker.commands)) {
    let cursor = '0'
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 500)
      cursor = next
      // One key per command: on a cluster node, keys of different slots cannot share a DEL.
      await Promise.all(keys.map((k) => redis.del(k)))
    } while (cursor !== '0')
  }
}
