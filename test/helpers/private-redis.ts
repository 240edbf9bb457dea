import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Redis } from 'ioredis'

/**
 * A Redis server of the test's own, on its own port, so a test can kill and restart it without
 * disturbing the shared one. No automatic persistence: a kill loses the data, as a crashed cache
 * without persistence does; `stop({ keepData: true })` saves first, so the restarted server has
 * it back (what clients see when Redis was only unreachable for a while).
 */
export class PrivateRedis {
  private proc: ChildProcess | undefined
  private readonly dir = mkdtempSync(join(tmpdir(), 'redis-private-'))

  constructor(readonly port: number) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`
  }

  get running(): boolean {
    return this.proc !== undefined
  }

  /** Resolves once the server accepts connections. */
  async start(): Promise<void> {
    const args = ['--port', String(this.port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no']
    const proc = await spawnRedisServer([...args, '--dir', this.dir])
    this.proc = proc
  }

  /** An abrupt stop (SIGKILL), as a crash or a network cut looks to clients. */
  async stop(opts: { keepData?: boolean } = {}): Promise<void> {
    const proc = this.proc
    if (!proc) return
    if (opts.keepData) await this.admin((r) => r.save())
    this.proc = undefined
    proc.kill('SIGKILL')
    if (proc.exitCode === null && proc.signalCode === null) await once(proc, 'exit')
    // Otherwise the next start would load an earlier save.
    if (!opts.keepData) rmSync(join(this.dir, 'dump.rdb'), { force: true })
  }

  /** Stops it and deletes its directory. */
  async remove(): Promise<void> {
    await this.stop()
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** The same, synchronously (from an exit handler). */
  removeNow(): void {
    this.proc?.kill('SIGKILL')
    this.proc = undefined
    rmSync(this.dir, { recursive: true, force: true })
  }

  /** Freezes the server (SIGSTOP): connections stay open and nothing is answered, as a hung Redis. */
  pause(): void {
    this.proc?.kill('SIGSTOP')
  }

  resume(): void {
    this.proc?.kill('SIGCONT')
  }

  /** Runs `fn` on a short-lived connection of its own (not the app's). */
  async admin<T>(fn: (redis: Redis) => Promise<T>): Promise<T> {
    const redis = new Redis(this.url, {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    })
    try {
      await redis.connect()
      return await fn(redis)
    } finally {
      redis.disconnect()
    }
  }
}

/**
 * Starts `redis-server` with these arguments; resolves once it accepts connections (its output is
 * drained afterwards: a full pipe would stall the server in a long run).
 */
export async function spawnRedisServer(args: string[]): Promise<ChildProcess> {
  const proc = spawn('redis-server', args)
  let out = ''
  await new Promise<void>((resolve, reject) => {
    const onData = (d: Buffer) => {
      out += d.toString()
      if (!out.includes('Ready to accept connections')) return
      proc.stdout?.off('data', onData)
      proc.stdout?.resume()
      resolve()
    }
    proc.stdout?.on('data', onData)
    proc.once('error', reject)
    proc.once('exit', (code) => reject(new Error(`redis-server exited ${code}: ${out.slice(-500)}`)))
  })
  return proc
}
