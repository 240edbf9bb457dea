import { randomBytes } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from './app.js'
import { AccessTokens } from './auth/jwt.js'
import type { TicketStore } from './auth/tickets.js'
import { languageIndex, startRetention, startSweeper } from './background-jobs.js'
import { MemoryBroker } from './broker/memory.js'
import {
  MemoryConnectionLeases,
  MemoryPresence,
  MemoryRateLimiter,
  MemorySendRate,
  MemoryTicketStore,
} from './broker/memory-stores.js'
import { FallbackPresence } from './broker/presence-fallback.js'
import { FallbackRateLimiter } from './broker/rate-limiter-fallback.js'
import { RedisBroker } from './broker/redis.js'
import type { RedisTarget } from './broker/redis-client.js'
import { FallbackConnectionLeases, RedisConnectionLeases } from './broker/redis-leases.js'
import { RedisPresence, RedisRateLimiter, RedisSendRate, RedisTicketStore } from './broker/redis-stores.js'
import { FallbackSendRate } from './broker/send-rate-fallback.js'
import { TicketsOrUnavailable } from './broker/tickets-unavailable.js'
import type { Config } from './config/config.js'
import { trackConnections } from './http/connections.js'
import { createMetrics, sendProbe } from './observability/metrics.js'
import { registerOutboxMetrics } from './observability/outbox-metrics.js'
import { outboxServices } from './outbox-wiring.js'
import { AttachmentService } from './services/attachments.js'
import { AuthService } from './services/auth.js'
import { BanService } from './services/bans.js'
import { BlockService } from './services/blocks.js'
import { ConversationService } from './services/conversations.js'
import { EXPORT_MAX_PER_WINDOW, EXPORT_WINDOW_SEC, ExportService } from './services/export.js'
import type { Services } from './services/index.js'
import { LoginThrottle } from './services/login-throttle.js'
import { MessageService } from './services/messages.js'
import { ModerationService } from './services/moderation.js'
import type { ObjectStorage } from './services/object-storage.js'
import { PinService } from './services/pins.js'
import type { Broker, ConnectionLeases, Presence, RateLimiter, SendRate } from './services/ports.js'
import { PresenceService } from './services/presence.js'
import { createPushChannel } from './services/push.js'
import { PushSubscriptionService } from './services/push-subscriptions.js'
import { ReactionService } from './services/reactions.js'
import { ReportService } from './services/reports.js'
import { RetentionService } from './services/retention.js'
import { SearchService } from './services/search.js'
import { ThreadService } from './services/threads.js'
import { UserService } from './services/users.js'
import { LocalObjectStorage, localStorageSecret } from './storage/local.js'
import { S3ObjectStorage } from './storage/s3.js'
import { type Database, openDatabase } from './store/db.js'
import { primaryReads, type Reads, ReplicaReads } from './store/read-replica.js'
import { developmentSigningSecret } from './store/signing-keys.js'

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
  leases: ConnectionLeases
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
  if (config.searchLanguage && !shared?.database) await languageIndex(database, config.searchLanguage, logger)
  const infra = shared?.infrastructure ?? (await infrastructure(config, logger))
  const reads = readsFor(config, database, logger)
  const services = createServices(config, database, infra, { reads })
  // Without JWT_SECRET the key comes from the database: fail at startup, not at the first login.
  await services.tokens.ready()
  const app = await buildApp(services, logger)
  const replica = config.databaseRead ? `; read replica: ${describeUrl(config.databaseRead.url)}` : ''
  logger.info(
    { database: database.describe, broker: infra.broker.kind },
    `database: ${database.describe}${replica}; broker: ${infra.broker.kind === 'redis' ? `redis${config.redisClusterNodes.length > 0 ? ' cluster' : ''} (${config.redisPubsub})` : 'in-process'}`,
  )
  const connections = trackConnections(app.server)
  const sweeper = startSweeper(services.attachments, config.attachments.sweepIntervalSec, logger)
  const retention = startRetention(services, config.retention.intervalSec, logger)
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
      clearInterval(sweeper)
      await retention.stop()
      try {
        await app.close()
      } finally {
        clearTimeout(deadline)
      }
      await infra.presence.close()
      await infra.leases.close()
      await infra.broker.close()
      await reads.close()
      if (!shared?.database) await database.close()
    },
  }
}

/** Where replica-eligible reads go: DATABASE_READ_URL when set (PostgreSQL only, config checks), else the primary. */
export function readsFor(config: Config, database: Database, logger: Logger): Reads {
  if (!config.databaseRead) return primaryReads(database.db)
  return new ReplicaReads(database.db, {
    ...config.databaseRead,
    poolSize: config.databasePoolSize,
    checkEveryMs: 500,
    log: logger,
  })
}

/** A database URL without its credentials, for the log. */
const describeUrl = (url: string) => {
  const u = new URL(url)
  return `postgresql://${u.host}${u.pathname}`
}

/** S3-compatible storage when S3_BUCKET is set, else files under DATA_DIR served by this server. */
export function objectStorage(config: Config, clock: () => number = Date.now): ObjectStorage {
  if (config.s3) return new S3ObjectStorage(config.s3, clock)
  return new LocalObjectStorage(
    config.dataDir,
    localStorageSecret(config.dataDir, config.jwt.secrets[0]),
    clock,
  )
}

/** The in-process stores by default; with Redis (REDIS_URL or REDIS_CLUSTER_NODES) it carries events, presence, tickets and limits. */
export async function infrastructure(config: Config, logger: Logger): Promise<Infrastructure> {
  const { messagePerSec, messageBurst } = config.rateLimits
  const target = redisTarget(config)
  if (!target) return memoryInfrastructure(config)
  const broker = new RedisBroker({
    target,
    prefix: config.redisPrefix,
    mode: config.redisPubsub,
    logger,
  })
  await broker.connect()
  const redis = broker.commands
  const key = (name: string) => broker.key(name)
  // While Redis is down, limits, leases and presence count per instance and tickets answer 503 (docs/scaling.md).
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
    leases: new FallbackConnectionLeases(
      new RedisConnectionLeases(redis, key, config.ws.connectionLeaseMs),
      broker,
      logger,
    ),
  }
}

/** REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster); undefined when neither is set. */
function redisTarget(config: Config): RedisTarget | undefined {
  if (config.redisClusterNodes.length > 0) return { clusterNodes: config.redisClusterNodes }
  return config.redisUrl === undefined ? undefined : { url: config.redisUrl }
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
    leases: new MemoryConnectionLeases(),
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
  opts: {
    clock?: (() => number) | undefined
    reads?: Reads | undefined
    storage?: ObjectStorage | undefined
    /** The retention job's clock (now by default); tests move it instead of waiting days. */
    now?: (() => Date) | undefined
  } = {},
): Services {
  const { db } = database
  const { broker } = infra
  const reads = opts.reads ?? primaryReads(db)
  const { secrets, issuer, audience, accessTtlSec } = config.jwt
  const tokens = new AccessTokens({
    issuer,
    audience,
    accessTtlSec,
    // No JWT_SECRET (development): one key per database, so instances on it accept each other's tokens.
    secrets:
      secrets.length > 0
        ? secrets
        : async () => [await developmentSigningSecret(db, randomBytes(48).toString('base64url'))],
  })
  const push = new PushSubscriptionService(db, config.push)
  const pushChannel = createPushChannel({
    db,
    presence: infra.presence,
    subscriptions: push,
    config: config.push,
    ca: config.push.ca,
  })
  const { outbox, outboxWorker, webhooks } = outboxServices(
    config,
    db,
    config.push.enabled ? [pushChannel] : [],
  )
  const metrics = createMetrics(broker, reads)
  registerOutboxMetrics(metrics.registry, outboxWorker)
  const users = new UserService(db, broker, reads, outbox)
  const conversations = new ConversationService(
    db,
    broker,
    { groupMaxMembers: config.groupMaxMembers, retentionDays: config.retention.defaultDays },
    reads,
    outbox,
  )
  const storage = opts.storage ?? objectStorage(config, opts.clock)
  const a = config.attachments
  const attachments = new AttachmentService(
    db,
    storage,
    conversations,
    infra.limiter,
    {
      maxBytes: a.maxBytes,
      contentTypes: a.contentTypes,
      quotaBytes: a.quotaBytes,
      perMinute: config.rateLimits.enabled ? a.ratePerMin : undefined,
      uploadTtlSec: a.uploadTtlSec,
      downloadTtlSec: a.downloadTtlSec,
      unsentTtlSec: a.unsentTtlSec,
    },
    opts.clock,
  )
  const messages = new MessageService(
    db,
    broker,
    conversations,
    {
      maxChars: config.messageMaxChars,
      batchMax: config.messageBatchMax,
      queueMax: config.messageQueueMax,
      sendRate: config.rateLimits.enabled ? infra.sendRate : undefined,
      pipelined: database.driver === 'postgres',
    },
    attachments,
    reads,
    outbox,
    sendProbe(metrics),
  )
  metrics.queue.depth = () => messages.queueDepth
  const moderation = new ModerationService(db, broker, messages)
  return {
    config,
    database,
    broker,
    metrics,
    tokens,
    users,
    auth: new AuthService(db, users, tokens, config.jwt.refreshTtlSec),
    conversations,
    messages,
    attachments,
    objectServer: storage.server,
    reactions: new ReactionService(db, broker),
    pins: new PinService(db, broker),
    threads: new ThreadService(db),
    retention: new RetentionService(
      db,
      broker,
      conversations,
      { defaultDays: config.retention.defaultDays, batchSize: config.retention.batchSize },
      (refs) => attachments.remove(refs),
      opts.now,
      (n) => metrics.retentionExpired.inc(n),
    ),
    search: new SearchService(db, config.searchLanguage),
    presence: new PresenceService(infra.presence, conversations, broker),
    blocks: new BlockService(db, broker),
    exports: new ExportService(
      db,
      infra.limiter,
      config.rateLimits.enabled ? { max: EXPORT_MAX_PER_WINDOW, windowSec: EXPORT_WINDOW_SEC } : undefined,
    ),
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
    connectionLeases: infra.leases,
    moderation,
    reports: new ReportService(
      db,
      moderation,
      infra.limiter,
      config.rateLimits.enabled
        ? { max: config.rateLimits.reportMaxPerUser, windowSec: config.rateLimits.reportWindowSec }
        : undefined,
    ),
    bans: new BanService(db, broker, conversations),
    outbox,
    outboxWorker,
    webhooks,
    push,
  }
}
