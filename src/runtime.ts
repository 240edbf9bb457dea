import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { type AppDeps, buildApp } from './app.js'
import { MemoryBroker } from './broker/memory.js'
import { RedisBroker } from './broker/redis.js'
import { RedisPresence, RedisRateLimiter, RedisSendRate, RedisTicketStore } from './broker/redis-stores.js'
import type { Config } from './config/config.js'
import { type Database, openDatabase } from './store/db.js'

export interface Runtime {
  app: FastifyInstance
  /** Stops accepting, lets in-flight work finish, closes sockets (1001), the broker and the database. */
  stop(): Promise<void>
}

/**
 * Opens the database (migrating it), picks the broker, and builds the app: what `server.ts`,
 * `npm run cluster`, the benchmarks and multi-instance tests all start. Pass `database` to share
 * an already open one.
 */
export async function startRuntime(
  config: Config,
  logger: Logger,
  shared?: { database?: Database },
): Promise<Runtime> {
  const database =
    shared?.database ??
    (await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
    }))
  if (!shared?.database) await database.migrate()
  const deps = await brokerDeps(config, logger)
  const { app } = await buildApp({ ...deps, config, database, logger })
  logger.info(
    { database: database.describe, broker: deps.broker.kind },
    `database: ${database.describe}; broker: ${deps.broker.kind === 'redis' ? `redis (${config.redisPubsub})` : 'in-process'}`,
  )
  return {
    app,
    stop: async () => {
      await app.close()
      await deps.presence?.close()
      await deps.broker.close()
      if (!shared?.database) await database.close()
    },
  }
}

/** The in-process broker by default; with REDIS_URL, Redis carries events, presence, tickets and limits. */
export async function brokerDeps(
  config: Config,
  logger: Logger,
): Promise<Omit<AppDeps, 'config' | 'database' | 'logger'>> {
  if (!config.redisUrl) return { broker: new MemoryBroker() }
  const broker = new RedisBroker({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    mode: config.redisPubsub,
    logger,
  })
  await broker.connect()
  const redis = broker.commands
  const key = (name: string) => broker.key(name)
  return {
    broker,
    tickets: new RedisTicketStore(redis, key),
    limiter: new RedisRateLimiter(redis, key),
    presence: new RedisPresence(redis, key, broker.instanceId),
    sendRate: new RedisSendRate(redis, key, config.rateLimits.messagePerSec, config.rateLimits.messageBurst),
  }
}
