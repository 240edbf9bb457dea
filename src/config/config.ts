import { existsSync } from 'node:fs'
import { type OutboxConfig, outboxConfig } from './outbox-config.js'
import { type PushConfig, readPushConfig } from './push-config.js'
import { SETTINGS, type SettingName, type Spec } from './settings.js'
import { readWorkers } from './workers-config.js'

export { SETTINGS, type SettingName }

export interface Config {
  env: 'development' | 'production' | 'test'
  host: string
  port: number
  logLevel: string
  /** How long a shutdown waits for connections to finish before destroying them. */
  shutdownTimeoutMs: number
  /** WORKERS: server processes sharing the port (src/workers.ts); 1 serves from this process. */
  workers: number
  databaseUrl: string | undefined
  databasePoolSize: number
  /** A streaming replica for the reads that may use one (docs/scaling.md); undefined: none. */
  databaseRead:
    | {
        url: string
        /** Further behind than this, the replica is bypassed until it catches up. */
        maxLagMs: number
        /** How long a read waits for the replica to replay the primary's position. */
        waitMs: number
      }
    | undefined
  dataDir: string
  redisUrl: string | undefined
  /** REDIS_CLUSTER_NODES: seed nodes of a Redis Cluster; empty when Redis is one server (or none). */
  redisClusterNodes: { host: string; port: number }[]
  redisPrefix: string
  redisPubsub: 'classic' | 'sharded'
  jwt: {
    /**
     * JWT_SECRET's secrets, newest first: the first signs, every one verifies. Empty when
     * JWT_SECRET is unset (development): the key is then the one kept in the database.
     */
    secrets: string[]
    issuer: string
    audience: string
    accessTtlSec: number
    refreshTtlSec: number
  }
  corsOrigins: string[]
  wsOrigins: string[]
  bodyLimitBytes: number
  http: {
    /** Which peers may set X-Forwarded-For: false, true (any), or addresses/CIDRs/proxy-addr names. */
    trustProxy: boolean | string
    headersTimeoutMs: number
    requestTimeoutMs: number
    idleTimeoutMs: number
    keepAliveTimeoutMs: number
  }
  messageMaxChars: number
  groupMaxMembers: number
  /** Full-text configuration searched besides `simple`; undefined when it is `simple`. */
  searchLanguage: string | undefined
  ws: {
    maxFrameBytes: number
    heartbeatMs: number
    maxBacklogBytes: number
    maxViolations: number
    maxConnectionsPerUser: number
    /** How long a socket's slot in the per-user limit outlives its instance (renewed every third). */
    connectionLeaseMs: number
    ticketTtlSec: number
    typingTtlMs: number
    /** At most one typing `start` per socket and conversation is relayed this often. */
    typingRelayIntervalMs: number
  }
  rateLimits: {
    enabled: boolean
    messagePerSec: number
    messageBurst: number
    loginMaxFailures: number
    loginMaxFailuresPerIp: number
    loginAccountSlowdownAfter: number
    loginWindowSec: number
    registerMaxPerIp: number
    registerWindowSec: number
    ticketMaxPerUser: number
    ticketWindowSec: number
    /** Message reports per user (REPORT_MAX_PER_USER) in REPORT_WINDOW_SEC. */
    reportMaxPerUser: number
    reportWindowSec: number
  }
  messageBatchMax: number
  /** Sends that may wait for storage before further sends are refused as overloaded. */
  messageQueueMax: number
  /** When set, GET /metrics needs `Authorization: Bearer <metricsToken>`. */
  metricsToken: string | undefined
  /** The built web client served at `/` (nothing is served when it has no index.html). */
  webDir: string
  /** Set when S3_BUCKET is: attachments go to S3-compatible storage, else to DATA_DIR/objects. */
  s3:
    | {
        endpoint: string | undefined
        /** The endpoint as clients reach it, for presigned URLs, when it differs from the server's. */
        publicEndpoint: string | undefined
        bucket: string
        region: string
        accessKeyId: string | undefined
        secretAccessKey: string | undefined
        forcePathStyle: boolean
      }
    | undefined
  attachments: {
    maxBytes: number
    contentTypes: string[]
    quotaBytes: number
    ratePerMin: number
    uploadTtlSec: number
    downloadTtlSec: number
    unsentTtlSec: number
    sweepIntervalSec: number
  }
  retention: {
    /** MESSAGE_RETENTION_DAYS; null (unset): kept forever unless a conversation sets its own. */
    defaultDays: number | null
    intervalSec: number
    batchSize: number
  }
  /** The outbox worker and webhooks (issue 16). */
  outbox: OutboxConfig
  push: PushConfig
}

export class ConfigError extends Error {
  constructor(readonly problems: string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join('\n')}`)
  }
}

type Raw = Partial<Record<string, string | undefined>>

function readValue(
  name: string,
  spec: Spec,
  raw: Raw,
  problems: string[],
): string | number | boolean | string[] | undefined {
  const text = raw[name]?.trim() || spec.default
  if (text === undefined || text === '') return spec.kind === 'list' ? [] : undefined
  switch (spec.kind) {
    case 'int': {
      const n = Number(text)
      if (!Number.isInteger(n)) {
        problems.push(`${name}: "${text}" is not an integer`)
        return undefined
      }
      if ((spec.min !== undefined && n < spec.min) || (spec.max !== undefined && n > spec.max)) {
        problems.push(`${name}: ${n} is outside ${spec.min}..${spec.max}`)
        return undefined
      }
      return n
    }
    case 'list':
      return text
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean)
    case 'bool':
      return text === 'true' || text === '1'
    default:
      if (spec.oneOf && !spec.oneOf.includes(text)) {
        problems.push(`${name}: "${text}" must be one of ${spec.oneOf.join(', ')}`)
        return undefined
      }
      return text
  }
}

/** Parses the environment once; every bad value is reported, one line each. */
export function loadConfig(raw: Raw = process.env): Config {
  const problems: string[] = []
  const v: Record<string, unknown> = {}
  for (const [name, spec] of Object.entries(SETTINGS) as [string, Spec][]) {
    v[name] = readValue(name, spec, raw, problems)
  }
  const env = v.NODE_ENV as Config['env']
  const dataDir = v.DATA_DIR as string
  const secrets = parseSecrets(v.JWT_SECRET as string | undefined, problems)
  if (secrets.length === 0 && env === 'production') {
    problems.push('JWT_SECRET: required when NODE_ENV=production (at least 32 random characters)')
  }
  const clusterNodes = parseClusterNodes(v.REDIS_CLUSTER_NODES as string[], problems)
  if (clusterNodes.length > 0 && v.REDIS_URL !== undefined) {
    problems.push(
      'REDIS_CLUSTER_NODES: set either REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both',
    )
  }
  if (clusterNodes.length > 0 && v.REDIS_PUBSUB === 'classic') {
    problems.push(
      'REDIS_PUBSUB: a Redis Cluster needs sharded (classic Pub/Sub sends every message to every shard)',
    )
  }
  const headersTimeout = v.HTTP_HEADERS_TIMEOUT_MS as number | undefined
  const requestTimeout = v.HTTP_REQUEST_TIMEOUT_MS as number | undefined
  if (headersTimeout !== undefined && requestTimeout !== undefined && headersTimeout > requestTimeout) {
    problems.push('HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS')
  }
  const metricsToken = v.METRICS_TOKEN as string | undefined
  if (metricsToken !== undefined && metricsToken.length < 16) {
    problems.push('METRICS_TOKEN: must be at least 16 characters')
  }
  if (v.DATABASE_READ_URL !== undefined && v.DATABASE_URL === undefined) {
    problems.push(
      'DATABASE_READ_URL: needs DATABASE_URL (the embedded PGlite has no replicas; unset DATABASE_READ_URL or set DATABASE_URL to the primary)',
    )
  }
  const outbox = outboxConfig(v, problems)
  const shared = {
    database: v.DATABASE_URL !== undefined,
    redis: v.REDIS_URL !== undefined || clusterNodes.length > 0,
  }
  const workers = readWorkers(v, shared, problems)
  const push = readPushConfig(v, problems)
  if (problems.length > 0) throw new ConfigError(problems)
  const int = (name: SettingName) => v[name] as number
  return {
    env,
    host: v.HOST as string,
    port: int('PORT'),
    logLevel: v.LOG_LEVEL as string,
    shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS'),
    workers,
    databaseUrl: v.DATABASE_URL as string | undefined,
    databasePoolSize: int('DATABASE_POOL_SIZE'),
    databaseRead:
      v.DATABASE_READ_URL === undefined
        ? undefined
        : {
            url: v.DATABASE_READ_URL as string,
            maxLagMs: int('DATABASE_READ_MAX_LAG_MS'),
            waitMs: int('DATABASE_READ_WAIT_MS'),
          },
    dataDir,
    redisUrl: v.REDIS_URL as string | undefined,
    redisPrefix: v.REDIS_PREFIX as string,
    redisClusterNodes: clusterNodes,
    redisPubsub: (v.REDIS_PUBSUB ??
      (clusterNodes.length > 0 ? 'sharded' : 'classic')) as Config['redisPubsub'],
    jwt: {
      secrets,
      issuer: v.JWT_ISSUER as string,
      audience: v.JWT_AUDIENCE as string,
      accessTtlSec: int('ACCESS_TOKEN_TTL'),
      refreshTtlSec: int('REFRESH_TOKEN_TTL'),
    },
    corsOrigins: v.CORS_ORIGINS as string[],
    wsOrigins: v.WS_ORIGINS as string[],
    bodyLimitBytes: int('BODY_LIMIT_BYTES'),
    http: {
      trustProxy: parseTrustProxy(v.TRUST_PROXY as string),
      headersTimeoutMs: int('HTTP_HEADERS_TIMEOUT_MS'),
      requestTimeoutMs: int('HTTP_REQUEST_TIMEOUT_MS'),
      idleTimeoutMs: int('HTTP_IDLE_TIMEOUT_MS'),
      keepAliveTimeoutMs: int('HTTP_KEEP_ALIVE_TIMEOUT_MS'),
    },
    messageMaxChars: int('MESSAGE_MAX_CHARS'),
    groupMaxMembers: int('GROUP_MAX_MEMBERS'),
    searchLanguage: v.SEARCH_LANGUAGE === 'simple' ? undefined : (v.SEARCH_LANGUAGE as string),
    ws: {
      maxFrameBytes: int('WS_MAX_FRAME_BYTES'),
      heartbeatMs: int('WS_HEARTBEAT_MS'),
      maxBacklogBytes: int('WS_MAX_BACKLOG_BYTES'),
      maxViolations: int('WS_MAX_VIOLATIONS'),
      maxConnectionsPerUser: int('WS_MAX_CONNECTIONS_PER_USER'),
      connectionLeaseMs: int('WS_CONNECTION_LEASE_MS'),
      ticketTtlSec: int('WS_TICKET_TTL'),
      typingTtlMs: int('TYPING_TTL_MS'),
      typingRelayIntervalMs: int('TYPING_RELAY_INTERVAL_MS'),
    },
    rateLimits: {
      enabled: v.RATE_LIMITS === 'on',
      messagePerSec: int('MESSAGE_RATE_PER_SEC'),
      messageBurst: int('MESSAGE_RATE_BURST'),
      loginMaxFailures: int('LOGIN_MAX_FAILURES'),
      loginMaxFailuresPerIp: int('LOGIN_MAX_FAILURES_PER_IP'),
      loginAccountSlowdownAfter: int('LOGIN_ACCOUNT_SLOWDOWN_AFTER'),
      loginWindowSec: int('LOGIN_WINDOW_SEC'),
      registerMaxPerIp: int('REGISTER_MAX_PER_IP'),
      registerWindowSec: int('REGISTER_WINDOW_SEC'),
      ticketMaxPerUser: int('TICKET_MAX_PER_USER'),
      ticketWindowSec: int('TICKET_WINDOW_SEC'),
      reportMaxPerUser: int('REPORT_MAX_PER_USER'),
      reportWindowSec: int('REPORT_WINDOW_SEC'),
    },
    messageBatchMax: int('MESSAGE_BATCH_MAX'),
    messageQueueMax: int('MESSAGE_QUEUE_MAX'),
    metricsToken,
    webDir: v.WEB_DIR as string,
    s3:
      v.S3_BUCKET === undefined
        ? undefined
        : {
            endpoint: v.S3_ENDPOINT as string | undefined,
            publicEndpoint: v.S3_PUBLIC_ENDPOINT as string | undefined,
            bucket: v.S3_BUCKET as string,
            region: v.S3_REGION as string,
            accessKeyId: v.S3_ACCESS_KEY_ID as string | undefined,
            secretAccessKey: v.S3_SECRET_ACCESS_KEY as string | undefined,
            forcePathStyle: v.S3_FORCE_PATH_STYLE as boolean,
          },
    attachments: {
      maxBytes: int('ATTACHMENT_MAX_BYTES'),
      contentTypes: (v.ATTACHMENT_CONTENT_TYPES as string[]).map((t) => t.toLowerCase()),
      quotaBytes: int('ATTACHMENT_QUOTA_BYTES'),
      ratePerMin: int('ATTACHMENT_RATE_PER_MIN'),
      uploadTtlSec: int('ATTACHMENT_UPLOAD_TTL_SEC'),
      downloadTtlSec: int('ATTACHMENT_DOWNLOAD_TTL_SEC'),
      unsentTtlSec: int('ATTACHMENT_UNSENT_TTL_SEC'),
      sweepIntervalSec: int('ATTACHMENT_SWEEP_INTERVAL_SEC'),
    },
    retention: {
      defaultDays: (v.MESSAGE_RETENTION_DAYS as number | undefined) ?? null,
      intervalSec: int('RETENTION_INTERVAL_SEC'),
      batchSize: int('RETENTION_BATCH_SIZE'),
    },
    outbox,
    push,
  }
}

/** What a valid configuration may still get wrong, one line each, for the log at startup. */
export function startupWarnings(config: Config): string[] {
  const warnings: string[] = []
  // The development key is shared through the database, but instances that each embed their
  // own PGlite share nothing; only Redis says they are meant to run side by side.
  if (config.jwt.secrets.length === 0 && !config.databaseUrl && usesRedis(config)) {
    warnings.push(
      'JWT_SECRET is not set: this instance signs tokens with the development key of its own embedded database, ' +
        "so instances sharing Redis will not accept each other's tokens; " +
        'set DATABASE_URL (one database for all) or JWT_SECRET, the same on every instance',
    )
  }
  if (config.env === 'production' && config.metricsToken === undefined) {
    warnings.push(
      'METRICS_TOKEN is not set: GET /metrics is open to anyone who can reach this port; ' +
        'set METRICS_TOKEN, or keep /metrics off the public proxy',
    )
  }
  return warnings
}

/** Whether Redis (one server or a cluster) carries events and shared state between instances. */
export function usesRedis(config: Config): boolean {
  return config.redisUrl !== undefined || config.redisClusterNodes.length > 0
}

/** `host:port,host:port,…` (IPv6 hosts in brackets: `[::1]:7000`). */
function parseClusterNodes(items: string[], problems: string[]): { host: string; port: number }[] {
  const nodes: { host: string; port: number }[] = []
  for (const item of items) {
    const match = /^(\[[^\]]+\]|[^:\s]+):(\d{1,5})$/.exec(item)
    const port = Number(match?.[2])
    if (!match?.[1] || port < 1 || port > 65535) {
      problems.push(`REDIS_CLUSTER_NODES: "${item}" is not host:port`)
      continue
    }
    nodes.push({ host: match[1].replace(/^\[|\]$/g, ''), port })
  }
  return nodes
}

/**
 * JWT_SECRET: one secret, or several separated by commas, newest first. The first signs; the
 * others are still accepted (the previous key while its tokens expire, or the next one before a
 * rolling rotation makes it current: docs/security.md, "Signing keys"). Each at least 32 characters.
 */
function parseSecrets(text: string | undefined, problems: string[]): string[] {
  if (text === undefined) return []
  const secrets = text.split(',').map((s) => s.trim())
  if (secrets.some((s) => s.length < 32)) problems.push('JWT_SECRET: must be at least 32 characters')
  if (new Set(secrets).size !== secrets.length) problems.push('JWT_SECRET: lists a secret twice')
  return secrets
}

/** `false`, `true`, or a comma-separated list of addresses, CIDRs and proxy-addr names (`loopback`…). */
function parseTrustProxy(text: string): boolean | string {
  if (text === 'false') return false
  if (text === 'true') return true
  return text
}

/** Reads `.env` into process.env when present; real environment variables win. */
export function loadDotEnv(path = '.env'): void {
  if (!existsSync(path)) return
  process.loadEnvFile?.(path)
}
