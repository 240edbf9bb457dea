import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from './app.js'
import { AccessTokens } from './auth/jwt.js'
import type { TicketStore } from './auth/tickets.js'
import { MemoryBroker } from './broker/memory.js'
import {
  MemoryPresence,
  MemoryRateLimiter,
  MemorySendRate,
  MemoryTicketStore,
} from './broker/memory-stores.js'
import { FallbackPresence } from './broker/presence-fallback.js'
import { FallbackRateLimiter } from './broker/rate-limiter-fallback.js'
import { RedisBroker } from './broker/redis.js'
import { RedisPresence, RedisRateLimiter, RedisSendRate, RedisTicketStore } from './broker/redis-stores.js'
import { FallbackSendRate } from './broker/send-rate-fallback.js'
import { TicketsOrUnavailable } from './broker/tickets-unavailable.js'
import type { Config } from './config/config.js'
import { trackConnections } from './http/connections.js'
import { createMetrics } from './observability/metrics.js'
import { AuthService } from './services/auth.js'
import { ConversationService } from './services/conversations.js'
import type { Services } from './services/index.js'
import { LoginThrottle } from './services/login-throttle.js'
import { MessageService } from './services/messages.js'
import { PinService } from './services/pins.js'
import type { Broker, Presence, RateLimiter, SendRate } from './services/ports.js'
import { PresenceService } from './services/presence.js'
import { ReactionService } from './services/reactions.js'
import { SearchService } from './services/search.js'
import { ThreadService } from './services/threads.js'
import { UserService } from './services/users.js'
import { type Database, openDatabase } from './store/db.js'

/**
 * The only place that knows which store, broker and shared stores run: it opens them, builds
 * the services over them and hands the services to the app.
 */

/** The shared stores: in-process by default, in Redis when REDIS_URL is set. */
export interface Infrastructure {
  broker: Broker
  limiter: RateLimiter
  tickets: TicketStore
  presence: Presence
  sendRate: SendRate
}

export interface Runtime {
  app: FastifyInstance
  services: Services
  /**
   * Stops accepting, lets in-flight work finish, closes sockets (1001), the broker and the database.
   * Connections still open after SHUTDOWN_TIMEOUT_MS are destroyed.
   */
  stop(): Promise<void>
}

/**
 * Opens the database (migrating it), picks the broker, and builds the app: what `server.ts`,
 * `npm run cluster`, the benchmarks and multi-instance tests all start. Pass `database` to share
 * an already open one, `infrastructure` to use given shared stores.
 */
export async function startRuntime(
  config: Config,
  logger: Logger,
  shared?: { database?: Database; infrastructure?: Infrastructure },
): Promise<Runtime> {
  const database =
    shared?.database ??
    (await openDatabase({
      databaseUrl: config.databaseUrl,
      dataDir: config.dataDir,
      poolSize: config.databasePoolSize,
    }))
  if (!shared?.database) await database.migrate()
  const infra = shared?.infrastructure ?? (await infrastructure(config, logger))
  const services = createServices(config, database, infra)
  const app = await buildApp(services, logger)
  logger.info(
    { database: database.describe, broker: infra.broker.kind },
    `database: ${database.describe}; broker: ${infra.broker.kind === 'redis' ? `redis (${config.redisPubsub})` : 'in-process'}`,
  )
  const connections = trackConnections(app.server)
  return {
    app,
    services,
    stop: async () => {
      const deadline = setTimeout(() => {
        logger.warn(
          { connections: connections.size },
          'shutdown deadline passed: destroying open connections',
        )
        connections.destroyAll()
      }, config.shutdownTimeoutMs)
      try {
        await app.close()
      } finally {
        clearTimeout(deadline)
      }
      await infra.presence.close()
      await infra.broker.close()
      if (!shared?.database) await database.close()
    },
  }
}

/** The in-process stores by default; with REDIS_URL, Redis carries events, presence, tickets and limits. */
export async function infrastructure(config: Config, logger: Logger): Promise<Infrastructure> {
  const { messagePerSec, messageBurst } = config.rateLimits
  if (!config.redisUrl) return memoryInfrastructure(config)
  const broker = new RedisBroker({
    url: config.redisUrl,
    prefix: config.redisPrefix,
    mode: config.redisPubsub,
    logger,
  })
  await broker.connect()
  const redis = broker.commands
  const key = (name: string) => broker.key(name)
  // While Redis is down, limits and presence count per instance and tickets answer 503 (docs/scaling.md).
  return {
    broker,
    tickets: new TicketsOrUnavailable(new RedisTicketStore(redis, key)),
    limiter: new FallbackRateLimiter(new RedisRateLimiter(redis, key), logger),
    presence: new FallbackPresence(new RedisPresence(redis, key, broker.instanceId), broker, logger),
    sendRate: new FallbackSendRate(
      new RedisSendRate(redis, key, messagePerSec, messageBurst),
      messagePerSec,
      messageBurst,
      logger,
    ),
  }
}

/** One process, nothing shared: the embedded default. */
export function memoryInfrastructure(config: Config, broker: Broker = new MemoryBroker()): Infrastructure {
  const { messagePerSec, messageBurst } = config.rateLimits
  return {
    broker,
    tickets: new MemoryTicketStore(),
    limiter: new MemoryRateLimiter(),
    presence: new MemoryPresence(),
    sendRate: new MemorySendRate(messagePerSec, messageBurst),
  }
}

/**
 * The services over an open database and the chosen infrastructure. `clock` (Date.now by
 * default) times login holds; tests pass one they move instead of waiting.
 */
export function createServices(
  config: Config,
  database: Database,
  infra: Infrastructure,
  opts: { clock?: (() => number) | undefined } = {},
): Services {
  const { db } = database
  const { broker } = infra
  const tokens = new AccessTokens(config.jwt)
  const users = new UserService(db, broker)
  const conversations = new ConversationService(db, broker, { groupMaxMembers: config.groupMaxMembers })
  return {
    config,
    database,
    broker,
    metrics: createMetrics(broker),
    tokens,
    users,
    auth: new AuthService(db, users, tokens, config.jwt.refreshTtlSec),
    conversations,
    messages: new MessageService(db, broker, conversations, {
      maxChars: config.messageMaxChars,
      batchMax: config.messageBatchMax,
      sendRate: config.rateLimits.enabled ? infra.sendRate : undefined,
    }),
    reactions: new ReactionService(db, broker),
    pins: new PinService(db, broker),
    threads: new ThreadService(db),
    search: new SearchService(db, config.searchLanguage),
    presence: new PresenceService(infra.presence, conversations, broker),
    limiter: infra.limiter,
    loginThrottle: new LoginThrottle(
      infra.limiter,
      {
        maxFailures: config.rateLimits.loginMaxFailures,
        maxFailuresPerIp: config.rateLimits.loginMaxFailuresPerIp,
        accountSlowdownAfter: config.rateLimits.loginAccountSlowdownAfter,
        windowSec: config.rateLimits.loginWindowSec,
      },
      opts.clock,
    ),
    tickets: infra.tickets,
  }
}
