import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { ConfigError, loadConfig, loadDotEnv, SETTINGS, startupWarnings } from '../../src/config/config.js'

const SECRET = 'x'.repeat(32)
const ENV_EXAMPLE = new URL('../../.env.example', import.meta.url)

const dirs: string[] = []
const tmp = () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-config-'))
  dirs.push(dir)
  return dir
}
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** The problems loadConfig reports, or a failure when it accepts the input. */
function problemsOf(raw: Record<string, string>): string[] {
  try {
    loadConfig(raw)
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError)
    return (err as ConfigError).problems
  }
  throw new Error(`loadConfig accepted ${JSON.stringify(raw)}`)
}

/** `NAME=value` lines of .env.example (comments and blank lines skipped). */
function envExample(): Map<string, string> {
  const lines = readFileSync(ENV_EXAMPLE, 'utf8').split('\n')
  const entries = lines
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'))
    .map((l) => {
      const at = l.indexOf('=')
      return [l.slice(0, at), l.slice(at + 1)] as const
    })
  return new Map(entries)
}

describe('loadConfig', () => {
  it('has the documented defaults', () => {
    const config = loadConfig({ JWT_SECRET: SECRET })
    expect(config).toMatchObject({
      env: 'development',
      host: '0.0.0.0',
      port: 8000,
      logLevel: 'info',
      databaseUrl: undefined,
      dataDir: './data',
      redisUrl: undefined,
      corsOrigins: [],
      bodyLimitBytes: 65536,
      jwt: {
        secrets: [SECRET],
        issuer: 'chat-api',
        audience: 'chat-api',
        accessTtlSec: 900,
        refreshTtlSec: 2592000,
      },
    })
    expect(config.rateLimits.enabled).toBe(true)
  })

  it('reads, trims and converts values', () => {
    const config = loadConfig({
      JWT_SECRET: SECRET,
      PORT: ' 9000 ',
      DATABASE_URL: 'postgres://db/chat',
      CORS_ORIGINS: 'https://a.example, https://b.example,',
      RATE_LIMITS: 'off',
      NODE_ENV: 'production',
    })
    expect(config).toMatchObject({ port: 9000, databaseUrl: 'postgres://db/chat', env: 'production' })
    expect(config.corsOrigins).toEqual(['https://a.example', 'https://b.example'])
    expect(config.rateLimits.enabled).toBe(false)
  })

  it('treats an empty value as unset (what a copied .env.example holds)', () => {
    const config = loadConfig({ JWT_SECRET: SECRET, PORT: '', DATABASE_URL: '', REDIS_URL: '  ' })
    expect(config).toMatchObject({ port: 8000, databaseUrl: undefined, redisUrl: undefined })
  })

  it('reports every bad value, one line each', () => {
    const problems = problemsOf({
      JWT_SECRET: SECRET,
      PORT: 'eighty',
      ACCESS_TOKEN_TTL: '5',
      BODY_LIMIT_BYTES: '1.5',
      LOG_LEVEL: 'loud',
      NODE_ENV: 'staging',
    })
    expect(problems).toHaveLength(5)
    for (const name of ['PORT', 'ACCESS_TOKEN_TTL', 'BODY_LIMIT_BYTES', 'LOG_LEVEL', 'NODE_ENV']) {
      expect(
        problems.filter((p) => p.startsWith(`${name}: `)),
        name,
      ).toHaveLength(1)
    }
    expect(problems).toContain('PORT: "eighty" is not an integer')
    expect(problems).toContain('ACCESS_TOKEN_TTL: 5 is outside 10..86400')
    const message = new ConfigError(problems).message.split('\n')
    expect(message).toHaveLength(1 + problems.length)
    expect(message[0]).toBe('invalid configuration:')
  })

  it('refuses DATABASE_READ_URL on the embedded PGlite, which has no replicas', () => {
    expect(problemsOf({ JWT_SECRET: SECRET, DATABASE_READ_URL: 'postgres://replica/chat' })).toEqual([
      'DATABASE_READ_URL: needs DATABASE_URL (the embedded PGlite has no replicas; unset DATABASE_READ_URL or set DATABASE_URL to the primary)',
    ])
    const config = loadConfig({
      JWT_SECRET: SECRET,
      DATABASE_URL: 'postgres://primary/chat',
      DATABASE_READ_URL: 'postgres://replica/chat',
    })
    expect(config.databaseRead).toEqual({ url: 'postgres://replica/chat', maxLagMs: 2000, waitMs: 50 })
    expect(loadConfig({ JWT_SECRET: SECRET }).databaseRead).toBeUndefined()
  })

  it('refuses a port outside 0..65535', () => {
    expect(problemsOf({ JWT_SECRET: SECRET, PORT: '70000' })).toEqual(['PORT: 70000 is outside 0..65535'])
  })

  it('stops production without JWT_SECRET, with a clear message, and writes no secret', () => {
    const dataDir = tmp()
    expect(problemsOf({ NODE_ENV: 'production', DATA_DIR: dataDir })).toEqual([
      'JWT_SECRET: required when NODE_ENV=production (at least 32 random characters)',
    ])
    expect(readdirSync(dataDir)).toEqual([])
  })

  it.each(['production', 'development'])('refuses a JWT_SECRET shorter than 32 characters (%s)', (env) => {
    expect(problemsOf({ NODE_ENV: env, JWT_SECRET: 'short' })).toEqual([
      'JWT_SECRET: must be at least 32 characters',
    ])
  })

  it('in development without JWT_SECRET, lists no secret and writes nothing to DATA_DIR (the key is in the database)', () => {
    const dataDir = tmp()
    expect(loadConfig({ NODE_ENV: 'development', DATA_DIR: dataDir }).jwt.secrets).toEqual([])
    expect(readdirSync(dataDir)).toEqual([])
  })

  it('reads JWT_SECRET as one secret, or a comma-separated list with the current one first', () => {
    const [a, b, c] = ['a', 'b', 'c'].map((x) => x.repeat(40))
    expect(loadConfig({ JWT_SECRET: a }).jwt.secrets).toEqual([a])
    expect(loadConfig({ JWT_SECRET: ` ${a} , ${b},${c}` }).jwt.secrets).toEqual([a, b, c])
    expect(problemsOf({ JWT_SECRET: `${a},short` })).toEqual(['JWT_SECRET: must be at least 32 characters'])
    expect(problemsOf({ JWT_SECRET: `${a},` })).toEqual(['JWT_SECRET: must be at least 32 characters'])
    expect(problemsOf({ JWT_SECRET: `${a},${a}` })).toEqual(['JWT_SECRET: lists a secret twice'])
  })
})

describe('Redis Cluster settings', () => {
  const base = { JWT_SECRET: SECRET }
  it('reads REDIS_CLUSTER_NODES as seed nodes and defaults Pub/Sub to sharded on a cluster only', () => {
    const config = loadConfig({ ...base, REDIS_CLUSTER_NODES: 'a.example:7000, 10.0.0.2:7001,[::1]:7002' })
    expect(config.redisClusterNodes).toEqual([
      { host: 'a.example', port: 7000 },
      { host: '10.0.0.2', port: 7001 },
      { host: '::1', port: 7002 },
    ])
    expect(config.redisPubsub).toBe('sharded')
    expect(loadConfig({ ...base, REDIS_URL: 'redis://r:6379' }).redisPubsub).toBe('classic')
    expect(loadConfig(base).redisClusterNodes).toEqual([])
  })

  it('refuses a node that is not host:port, both REDIS_URL and a cluster, and classic Pub/Sub on a cluster', () => {
    expect(problemsOf({ ...base, REDIS_CLUSTER_NODES: 'a:7000,b' })).toEqual([
      'REDIS_CLUSTER_NODES: "b" is not host:port',
    ])
    expect(problemsOf({ ...base, REDIS_CLUSTER_NODES: 'a:70000' })).toEqual([
      'REDIS_CLUSTER_NODES: "a:70000" is not host:port',
    ])
    expect(problemsOf({ ...base, REDIS_CLUSTER_NODES: 'a:7000', REDIS_URL: 'redis://r:6379' })).toEqual([
      'REDIS_CLUSTER_NODES: set either REDIS_URL (one server) or REDIS_CLUSTER_NODES (a cluster), not both',
    ])
    expect(problemsOf({ ...base, REDIS_CLUSTER_NODES: 'a:7000', REDIS_PUBSUB: 'classic' })).toEqual([
      'REDIS_PUBSUB: a Redis Cluster needs sharded (classic Pub/Sub sends every message to every shard)',
    ])
  })
})

describe('startupWarnings', () => {
  const embeddedKeyWarning = expect.stringMatching(/will not accept each other's tokens.*set DATABASE_URL/)

  it('warns when the key is generated in an embedded database while Redis joins this instance to others', () => {
    const config = loadConfig({ NODE_ENV: 'development', REDIS_URL: 'redis://cache:6379' })
    expect(startupWarnings(config)).toEqual([embeddedKeyWarning])
  })

  it('says nothing of the key when JWT_SECRET is set, or the database is shared, or nothing is', () => {
    const redis = { REDIS_URL: 'redis://cache:6379' }
    expect(startupWarnings(loadConfig({ JWT_SECRET: SECRET, ...redis }))).toEqual([])
    const shared = { DATABASE_URL: 'postgres://db/chat', ...redis }
    expect(startupWarnings(loadConfig({ NODE_ENV: 'development', ...shared }))).toEqual([])
    expect(startupWarnings(loadConfig({ NODE_ENV: 'development' }))).toEqual([])
  })
})

describe('METRICS_TOKEN', () => {
  const openMetrics = expect.stringMatching(/METRICS_TOKEN is not set: GET \/metrics is open/)

  it('warns in production when /metrics is open, not in development, not with a token', () => {
    const production = { NODE_ENV: 'production', JWT_SECRET: SECRET, DATA_DIR: tmp() }
    expect(startupWarnings(loadConfig(production))).toEqual([openMetrics])
    expect(startupWarnings(loadConfig({ ...production, METRICS_TOKEN: 'm'.repeat(16) }))).toEqual([])
    expect(startupWarnings(loadConfig({ NODE_ENV: 'development', DATA_DIR: tmp() }))).toEqual([])
  })

  it('refuses a token shorter than 16 characters', () => {
    expect(problemsOf({ JWT_SECRET: SECRET, DATA_DIR: tmp(), METRICS_TOKEN: 'short' })).toEqual([
      'METRICS_TOKEN: must be at least 16 characters',
    ])
  })
})

describe('PUSH_CA_FILE', () => {
  const PEM = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n'

  it('is unset by default, and read once into the push config when set', () => {
    expect(loadConfig({ JWT_SECRET: SECRET }).push.ca).toBeUndefined()
    const file = join(tmp(), 'ca.pem')
    writeFileSync(file, PEM)
    expect(loadConfig({ JWT_SECRET: SECRET, PUSH_CA_FILE: file }).push.ca).toBe(PEM)
  })

  it('refuses to start when the file cannot be read or holds no certificate', () => {
    const dir = tmp()
    const missing = join(dir, 'missing.pem')
    expect(problemsOf({ JWT_SECRET: SECRET, PUSH_CA_FILE: missing })).toEqual([
      `PUSH_CA_FILE: cannot read ${missing} (ENOENT)`,
    ])
    expect(problemsOf({ JWT_SECRET: SECRET, PUSH_CA_FILE: dir })).toEqual([
      `PUSH_CA_FILE: cannot read ${dir} (EISDIR)`,
    ])
    const junk = join(dir, 'junk.pem')
    writeFileSync(junk, 'not a certificate')
    expect(problemsOf({ JWT_SECRET: SECRET, PUSH_CA_FILE: junk })).toEqual([
      `PUSH_CA_FILE: ${junk} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`,
    ])
  })
})

describe('.env.example', () => {
  it('documents every setting, and nothing else', () => {
    expect(existsSync(ENV_EXAMPLE), '.env.example is missing').toBe(true)
    const documented = [...envExample().keys()].sort()
    expect(documented).toEqual(Object.keys(SETTINGS).sort())
  })

  it('shows each setting’s default, so a copy of it changes nothing', () => {
    for (const [name, value] of envExample()) {
      const spec = SETTINGS[name as keyof typeof SETTINGS] as { default?: string } | undefined
      expect(value, name).toBe(spec?.default ?? '')
    }
    const dataDir = tmp()
    const copied = { ...Object.fromEntries(envExample()), JWT_SECRET: SECRET, DATA_DIR: dataDir }
    expect(loadConfig(copied)).toEqual(loadConfig({ JWT_SECRET: SECRET, DATA_DIR: dataDir }))
  })
})

describe('loadDotEnv', () => {
  const names = ['CHAT_TEST_FROM_FILE', 'CHAT_TEST_FROM_ENV']
  afterEach(() => {
    for (const name of names) delete process.env[name]
  })

  it('reads .env when present, and real environment variables win', () => {
    const file = join(tmp(), '.env')
    writeFileSync(file, 'CHAT_TEST_FROM_FILE=file\nCHAT_TEST_FROM_ENV=file\n')
    process.env.CHAT_TEST_FROM_ENV = 'env'
    loadDotEnv(file)
    expect(process.env.CHAT_TEST_FROM_FILE).toBe('file')
    expect(process.env.CHAT_TEST_FROM_ENV).toBe('env')
  })

  it('does nothing when the file is absent', () => {
    expect(() => loadDotEnv(join(tmp(), 'missing.env'))).not.toThrow()
  })
})
