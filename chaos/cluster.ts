import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, rmSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import net from 'node:net'
import { dirname, join } from 'node:path'
import { PrivatePostgres } from '../test/helpers/private-postgres.js'
import { PrivateRedis } from '../test/helpers/private-redis.js'
import { bundleServer, ROOT_DIR } from './build.js'
import { TcpProxy } from './proxy.js'

export const DATABASE_POOL_SIZE = 10

export async function freePort(): Promise<number> {
  const srv = net.createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', () => resolve()))
  const address = srv.address()
  const port = typeof address === 'object' && address ? address.port : 0
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}

/** Fails loudly (never skips) when the engines the run needs are not installed. */
export function checkPrerequisites(): void {
  const missing: string[] = []
  const pgVersions = existsSync('/usr/lib/postgresql') ? readdirSync('/usr/lib/postgresql') : []
  if (!pgVersions.some((v) => existsSync(`/usr/lib/postgresql/${v}/bin/pg_ctl`)))
    missing.push('PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin: apt-get install postgresql)')
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'pipe' })
  } catch {
    missing.push('redis-server on PATH (apt-get install redis-server)')
  }
  if (missing.length > 0) throw new Error(`the chaos run cannot start; missing:\n  ${missing.join('\n  ')}`)
}

/** The answer of GET /ready, or undefined when nothing answers on the port. */
export function readyStatus(port: number, timeoutMs = 2000): Promise<number | undefined> {
  return new Promise((resolve) => {
    const req = http.get(
      { host: '127.0.0.1', port, path: '/ready', agent: false, timeout: timeoutMs },
      (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode))
      },
    )
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(undefined))
  })
}

export interface Exit {
  code: number | null
  signal: NodeJS.Signals | null
}

/**
 * One chat instance: `src/server.ts` as a child process (the real entry, so SIGTERM takes the
 * real drain path) on a fixed port that survives restarts, behind its TCP proxy.
 */
export class Instance {
  private proc: ChildProcess | undefined
  private exited: Promise<Exit> | undefined
  /** Set when the run itself stops the process: any other exit after startup is a crash. */
  private stopping = false
  /** performance.now() when the current process became ready. */
  startedAt = 0
  starts = 0
  onCrash: ((exit: Exit) => void) | undefined

  constructor(
    readonly index: number,
    readonly port: number,
    readonly proxy: TcpProxy,
    private readonly entry: string,
    private readonly env: NodeJS.ProcessEnv,
    readonly logFile: string,
  ) {}

  get pid(): number | undefined {
    return this.running ? this.proc?.pid : undefined
  }

  get running(): boolean {
    return this.proc !== undefined && this.proc.exitCode === null && this.proc.signalCode === null
  }

  /**
   * Starts the process and returns once it listens. `ready` decides what counts as up: /ready
   * 200 normally; any HTTP answer while a dependency is known to be down (it answers 503 then).
   */
  async start(timeoutMs: number, ready: (status: number) => boolean = (s) => s === 200): Promise<void> {
    mkdirSync(dirname(this.logFile), { recursive: true })
    const fd = openSync(this.logFile, 'a')
    const proc = spawn(process.execPath, ['--enable-source-maps', this.entry], {
      cwd: ROOT_DIR,
      env: { ...this.env, PORT: String(this.port) },
      stdio: ['ignore', fd, fd],
    })
    closeSync(fd)
    this.proc = proc
    this.stopping = false
    let up = false
    this.exited = new Promise((resolve) =>
      proc.once('exit', (code, signal) => {
        resolve({ code, signal })
        if (up && !this.stopping) this.onCrash?.({ code, signal })
      }),
    )
    this.starts++
    const deadline = performance.now() + timeoutMs
    for (;;) {
      if (!this.running) {
        const exit = await this.exited
        throw new Error(
          `instance ${this.index} exited during startup (${exit.code ?? exit.signal}); see ${this.logFile}`,
        )
      }
      const status = await readyStatus(this.port)
      if (status !== undefined && ready(status)) break
      if (performance.now() > deadline) {
        void this.kill()
        throw new Error(`instance ${this.index} not ready within ${timeoutMs} ms; see ${this.logFile}`)
      }
      await new Promise((r) => setTimeout(r, 150))
    }
    up = true
    this.startedAt = performance.now()
  }

  kill(): Promise<Exit> | undefined {
    this.stopping = true
    if (this.running) this.proc?.kill('SIGKILL')
    return this.exited
  }

  /** The error a crashed process printed last (its stderr goes to the log). */
  async crashReason(): Promise<string> {
    const text = await readFile(this.logFile, 'utf8').catch(() => '')
    const lines = text.slice(-8000).split('\n')
    const at = lines.findLastIndex((l) => /^\w*Error\b/.test(l))
    if (at < 0) return 'no error printed'
    const frame = lines.slice(at + 1).find((l) => l.trim().startsWith('at '))
    return `${lines[at]}${frame ? ` ${frame.trim()}` : ''}`
  }

  /**
   * SIGTERM and wait for the exit; past `deadlineMs` the process gets SIGKILL (and the caller
   * records a violation). Returns how long it took.
   */
  async terminate(deadlineMs: number): Promise<{ ms: number; exceeded: boolean; exit: Exit }> {
    const t0 = performance.now()
    if (!this.running || !this.exited) return { ms: 0, exceeded: false, exit: { code: null, signal: null } }
    this.stopping = true
    this.proc?.kill('SIGTERM')
    let exceeded = false
    const timer = setTimeout(() => {
      exceeded = true
      this.proc?.kill('SIGKILL')
    }, deadlineMs)
    const exit = await this.exited
    clearTimeout(timer)
    return { ms: performance.now() - t0, exceeded, exit }
  }
}

export interface ClusterSpec {
  instances: number
  logDir: string
  jwtSecret: string
}

/** PostgreSQL, Redis and the instances with their proxies; `stop` leaves nothing behind. */
export class Cluster {
  private bundle: string | undefined

  private constructor(
    readonly pg: PrivatePostgres,
    readonly redis: PrivateRedis,
    readonly instances: Instance[],
  ) {}

  /** `track` gets the cluster as soon as it exists, so a signal handler can kill a partial start. */
  static async start(
    spec: ClusterSpec,
    log: (s: string) => void,
    track: (c: Cluster) => void,
  ): Promise<Cluster> {
    checkPrerequisites()
    const [pgPort, redisPort] = [await freePort(), await freePort()]
    const [pg, bundle] = await Promise.all([
      PrivatePostgres.create(pgPort),
      bundleServer(String(process.pid)),
    ])
    const redis = new PrivateRedis(redisPort)
    const cluster = new Cluster(pg, redis, [])
    cluster.bundle = bundle
    track(cluster)
    try {
      await Promise.all([pg.startAsync(), redis.start()])
      log(`PostgreSQL on :${pgPort}, Redis on :${redisPort}`)
      const env: NodeJS.ProcessEnv = {
        ...process.env,
        NODE_ENV: 'production',
        LOG_LEVEL: 'warn',
        HOST: '127.0.0.1',
        DATABASE_URL: pg.url,
        DATABASE_POOL_SIZE: String(DATABASE_POOL_SIZE),
        REDIS_URL: redis.url,
        REDIS_PREFIX: 'chaos',
        JWT_SECRET: spec.jwtSecret,
        ACCESS_TOKEN_TTL: '3600',
        // Limits stay on (the Redis-backed limiter is part of what is tested) but never bind.
        RATE_LIMITS: 'on',
        MESSAGE_RATE_PER_SEC: '1000',
        MESSAGE_RATE_BURST: '2000',
        REGISTER_MAX_PER_IP: '100000',
        LOGIN_MAX_FAILURES_PER_IP: '100000',
        TICKET_MAX_PER_USER: '100000',
      }
      for (let i = 0; i < spec.instances; i++) {
        const port = await freePort()
        const proxy = new TcpProxy(port)
        await proxy.listen()
        const log = join(spec.logDir, `instance-${i}.log`)
        cluster.instances.push(new Instance(i, port, proxy, bundle, env, log))
      }
      // The first one migrates; the others start together after it.
      await cluster.instances[0]?.start(120_000)
      await Promise.all(cluster.instances.slice(1).map((inst) => inst.start(120_000)))
      return cluster
    } catch (err) {
      await cluster.stop()
      throw err
    }
  }

  /** Kills every process and deletes the temp dirs. Safe to call twice and after partial starts. */
  async stop(): Promise<void> {
    await Promise.all(this.instances.map((i) => i.kill()))
    await Promise.all(this.instances.map((i) => i.proxy.close().catch(() => undefined)))
    await this.redis.remove()
    this.pg.remove()
    if (this.bundle) rmSync(this.bundle, { force: true })
  }

  /** The synchronous last resort for signal and exit handlers. */
  killNow(): void {
    for (const i of this.instances) void i.kill()
    this.redis.removeNow()
    if (this.bundle) rmSync(this.bundle, { force: true })
    try {
      this.pg.remove()
    } catch {
      // best effort on the way out
    }
  }
}
