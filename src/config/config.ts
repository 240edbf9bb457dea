import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

/**
 * Every setting the service reads, with its default. `.env.example` documents the same list;
 * `test/unit/config.test.ts` fails when the two drift apart.
 */
type Kind = 'string' | 'int' | 'bool' | 'list'

interface Spec {
  kind: Kind
  default?: string
  min?: number
  max?: number
  oneOf?: readonly string[]
}

export const SETTINGS = {
  NODE_ENV: { kind: 'string', default: 'development', oneOf: ['development', 'production', 'test'] },
  HOST: { kind: 'string', default: '0.0.0.0' },
  PORT: { kind: 'int', default: '8000', min: 0, max: 65535 },
  SHUTDOWN_TIMEOUT_MS: { kind: 'int', default: '10000', min: 100, max: 600000 },
  LOG_LEVEL: {
    kind: 'string',
    default: 'info',
    oneOf: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
  },
  DATABASE_URL: { kind: 'string' },
  DATABASE_POOL_SIZE: { kind: 'int', default: '10', min: 1, max: 200 },
  DATA_DIR: { kind: 'string', default: './data' },
  REDIS_URL: { kind: 'string' },
  REDIS_PREFIX: { kind: 'string', default: 'chat' },
  REDIS_PUBSUB: { kind: 'string', default: 'classic', oneOf: ['classic', 'sharded'] },
  JWT_SECRET: { kind: 'string' },
  JWT_ISSUER: { kind: 'string', default: 'chat-api' },
  JWT_AUDIENCE: { kind: 'string', default: 'chat-api' },
  ACCESS_TOKEN_TTL: { kind: 'int', default: '900', min: 10, max: 86400 },
  REFRESH_TOKEN_TTL: { kind: 'int', default: '2592000', min: 60, max: 31536000 },
  CORS_ORIGINS: { kind: 'list', default: '' },
  WS_ORIGINS: { kind: 'list', default: '' },
  BODY_LIMIT_BYTES: { kind: 'int', default: '65536', min: 1024, max: 10485760 },
  TRUST_PROXY: { kind: 'string', default: 'loopback,linklocal,uniquelocal' },
  HTTP_HEADERS_TIMEOUT_MS: { kind: 'int', default: '10000', min: 100, max: 600000 },
  HTTP_REQUEST_TIMEOUT_MS: { kind: 'int', default: '30000', min: 100, max: 3600000 },
  HTTP_IDLE_TIMEOUT_MS: { kind: 'int', default: '60000', min: 100, max: 3600000 },
  HTTP_KEEP_ALIVE_TIMEOUT_MS: { kind: 'int', default: '72000', min: 100, max: 3600000 },
  MESSAGE_MAX_CHARS: { kind: 'int', default: '4000', min: 1, max: 100000 },
  GROUP_MAX_MEMBERS: { kind: 'int', default: '1000', min: 2, max: 100000 },
  SEARCH_LANGUAGE: {
    kind: 'string',
    default: 'simple',
    // PostgreSQL's built-in text search configurations.
    oneOf: [
      'simple',
      'arabic',
      'armenian',
      'basque',
      'catalan',
      'danish',
      'dutch',
      'english',
      'finnish',
      'french',
      'german',
      'greek',
      'hindi',
      'hungarian',
      'indonesian',
      'irish',
      'italian',
      'lithuanian',
      'nepali',
      'norwegian',
      'portuguese',
      'romanian',
      'russian',
      'serbian',
      'spanish',
      'swedish',
      'tamil',
      'turkish',
      'yiddish',
    ],
  },
  WS_MAX_FRAME_BYTES: { kind: 'int', default: '16384', min: 1024, max: 1048576 },
  WS_HEARTBEAT_MS: { kind: 'int', default: '30000', min: 100, max: 600000 },
  WS_MAX_BACKLOG_BYTES: { kind: 'int', default: '1048576', min: 1024, max: 268435456 },
  WS_MAX_VIOLATIONS: { kind: 'int', default: '10', min: 1, max: 1000 },
  WS_MAX_CONNECTIONS_PER_USER: { kind: 'int', default: '20', min: 1, max: 100000 },
  WS_TICKET_TTL: { kind: 'int', default: '30', min: 1, max: 600 },
  TYPING_TTL_MS: { kind: 'int', default: '6000', min: 100, max: 60000 },
  TYPING_RELAY_INTERVAL_MS: { kind: 'int', default: '3000', min: 100, max: 60000 },
  RATE_LIMITS: { kind: 'string', default: 'on', oneOf: ['on', 'off'] },
  MESSAGE_RATE_PER_SEC: { kind: 'int', default: '20', min: 1, max: 1000000 },
  MESSAGE_RATE_BURST: { kind: 'int', default: '40', min: 1, max: 1000000 },
  LOGIN_MAX_FAILURES: { kind: 'int', default: '5', min: 1, max: 100000 },
  LOGIN_WINDOW_SEC: { kind: 'int', default: '900', min: 1, max: 86400 },
  LOGIN_MAX_FAILURES_PER_IP: { kind: 'int', default: '50', min: 1, max: 1000000 },
  LOGIN_ACCOUNT_SLOWDOWN_AFTER: { kind: 'int', default: '100', min: 1, max: 1000000 },
  REGISTER_MAX_PER_IP: { kind: 'int', default: '10', min: 1, max: 1000000 },
  REGISTER_WINDOW_SEC: { kind: 'int', default: '600', min: 1, max: 86400 },
  TICKET_MAX_PER_USER: { kind: 'int', default: '30', min: 1, max: 1000000 },
  TICKET_WINDOW_SEC: { kind: 'int', default: '60', min: 1, max: 86400 },
  MESSAGE_BATCH_MAX: { kind: 'int', default: '500', min: 1, max: 10000 },
} as const satisfies Record<string, Spec>

export type SettingName = keyof typeof SETTINGS

export interface Config {
  env: 'development' | 'production' | 'test'
  host: string
  port: number
  logLevel: string
  /** How long a shutdown waits for connections to finish before destroying them. */
  shutdownTimeoutMs: number
  databaseUrl: string | undefined
  databasePoolSize: number
  dataDir: string
  redisUrl: string | undefined
  redisPrefix: string
  redisPubsub: 'classic' | 'sharded'
  jwt: {
    secret: string
    /** JWT_SECRET was unset: the secret is the one generated in DATA_DIR, this instance's own. */
    secretGenerated: boolean
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
  }
  messageBatchMax: number
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
  let secret = v.JWT_SECRET as string | undefined
  if (secret !== undefined && secret.length < 32) {
    problems.push('JWT_SECRET: must be at least 32 characters')
  }
  if (secret === undefined && env === 'production') {
    problems.push('JWT_SECRET: required when NODE_ENV=production (at least 32 random characters)')
  }
  const headersTimeout = v.HTTP_HEADERS_TIMEOUT_MS as number | undefined
  const requestTimeout = v.HTTP_REQUEST_TIMEOUT_MS as number | undefined
  if (headersTimeout !== undefined && requestTimeout !== undefined && headersTimeout > requestTimeout) {
    problems.push('HTTP_HEADERS_TIMEOUT_MS: must not exceed HTTP_REQUEST_TIMEOUT_MS')
  }
  if (problems.length > 0) throw new ConfigError(problems)
  const secretGenerated = secret === undefined
  secret ??= developmentSecret(dataDir)
  const int = (name: SettingName) => v[name] as number
  return {
    env,
    host: v.HOST as string,
    port: int('PORT'),
    logLevel: v.LOG_LEVEL as string,
    shutdownTimeoutMs: int('SHUTDOWN_TIMEOUT_MS'),
    databaseUrl: v.DATABASE_URL as string | undefined,
    databasePoolSize: int('DATABASE_POOL_SIZE'),
    dataDir,
    redisUrl: v.REDIS_URL as string | undefined,
    redisPrefix: v.REDIS_PREFIX as string,
    redisPubsub: v.REDIS_PUBSUB as Config['redisPubsub'],
    jwt: {
      secret,
      secretGenerated,
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
    },
    messageBatchMax: int('MESSAGE_BATCH_MAX'),
  }
}

/** What a valid configuration may still get wrong, one line each, for the log at startup. */
export function startupWarnings(config: Config): string[] {
  const warnings: string[] = []
  // Each instance generates its own secret in its own DATA_DIR; sharing a database or Redis is
  // how instances are run side by side (behind one load balancer), where they must share one.
  const shared = [config.databaseUrl && 'DATABASE_URL', config.redisUrl && 'REDIS_URL'].filter(Boolean)
  if (config.jwt.secretGenerated && shared.length > 0) {
    warnings.push(
      `JWT_SECRET is not set: this instance signs tokens with a secret of its own (${join(config.dataDir, 'jwt-secret')}), ` +
        `so instances sharing ${shared.join(' and ')} will not accept each other's tokens; ` +
        'set JWT_SECRET, the same on every instance',
    )
  }
  return warnings
}

/** `false`, `true`, or a comma-separated list of addresses, CIDRs and proxy-addr names (`loopback`…). */
function parseTrustProxy(text: string): boolean | string {
  if (text === 'false') return false
  if (text === 'true') return true
  return text
}

/**
 * Development only: a random secret generated once and kept in DATA_DIR, so tokens
 * survive restarts without anyone having to invent a secret.
 */
function developmentSecret(dataDir: string): string {
  const file = join(dataDir, 'jwt-secret')
  if (existsSync(file)) return readFileSync(file, 'utf8').trim()
  mkdirSync(dataDir, { recursive: true })
  const secret = randomBytes(48).toString('base64url')
  writeFileSync(file, secret, { mode: 0o600 })
  return secret
}

/** Reads `.env` into process.env when present; real environment variables win. */
export function loadDotEnv(path = '.env'): void {
  if (!existsSync(path)) return
  process.loadEnvFile?.(path)
}
