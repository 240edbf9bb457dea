import { type ChildProcess, spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

export const BENCH_DIR = dirname(fileURLToPath(import.meta.url))
export const ROOT_DIR = dirname(BENCH_DIR)
export const RESULTS_DIR = join(BENCH_DIR, 'results')

/** A reply to an IPC request, or an unsolicited event (`event` set). */
interface Reply {
  id?: number
  ok?: boolean
  result?: unknown
  error?: string
  event?: string
  [k: string]: unknown
}

export interface ChildOptions {
  /** Log file for the child's stdout and stderr. */
  log: string
  env: NodeJS.ProcessEnv
  cpuProf?: boolean
}

/**
 * A Node child process running one of the bench's TypeScript entries, with an IPC channel for
 * requests (seed users, run SQL, report RSS) and events (listening, progress). It is started
 * through `sh` to raise its open-file limit to the hard limit first, since a process cannot
 * hold more sockets than that.
 */
export class Child {
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>()
  private readonly listeners: ((m: Reply) => void)[] = []
  private exited: Promise<number | null>
  private exitCode: number | null | undefined

  private constructor(
    readonly name: string,
    private readonly proc: ChildProcess,
  ) {
    proc.on('message', (m: Reply) => {
      if (m.id !== undefined && this.pending.has(m.id)) {
        const p = this.pending.get(m.id)
        this.pending.delete(m.id)
        if (m.ok) p?.resolve(m.result)
        else p?.reject(new Error(`${name}: ${m.error ?? 'failed'}`))
        return
      }
      for (const l of this.listeners) l(m)
    })
    this.exited = new Promise((resolve) =>
      proc.on('exit', (code) => {
        this.exitCode = code
        for (const p of this.pending.values()) p.reject(new Error(`${name} exited (${code})`))
        this.pending.clear()
        resolve(code)
      }),
    )
  }

  static start(name: string, script: string, args: string[], opts: ChildOptions): Child {
    mkdirSync(dirname(opts.log), { recursive: true })
    const fd = openSync(opts.log, 'a')
    const nodeArgs = ['--import', 'tsx', '--expose-gc', join(BENCH_DIR, script), ...args]
    // The child profiles its main thread itself (node:inspector) and writes it when asked to stop.
    const stamp = new Date().toISOString().replace(/[:.]/g, '')
    const env = opts.cpuProf
      ? { ...opts.env, BENCH_CPU_PROFILE: join(RESULTS_DIR, 'prof', `${stamp}-${name}.cpuprofile`) }
      : opts.env
    const proc = spawn(
      '/bin/sh',
      ['-c', 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$0" "$@"', process.execPath, ...nodeArgs],
      { cwd: ROOT_DIR, env, stdio: ['ignore', fd, fd, 'ipc'] },
    )
    closeSync(fd)
    return new Child(name, proc)
  }

  get pid(): number {
    return this.proc.pid ?? -1
  }

  get running(): boolean {
    return this.exitCode === undefined
  }

  request<T = unknown>(op: string, args: Record<string, unknown> = {}): Promise<T> {
    if (!this.running) return Promise.reject(new Error(`${this.name} is not running`))
    const id = this.nextId++
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (v: unknown) => void, reject })
      this.proc.send({ id, op, ...args })
    })
  }

  onEvent(listener: (m: Reply) => void): void {
    this.listeners.push(listener)
  }

  /** Resolves with the first event named `event`; rejects if the child exits or the time runs out. */
  waitFor(event: string, timeoutMs: number): Promise<Reply> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`${this.name}: no '${event}' within ${timeoutMs} ms`)),
        timeoutMs,
      )
      this.onEvent((m) => {
        if (m.event !== event) return
        clearTimeout(timer)
        resolve(m)
      })
      void this.exited.then((code) => {
        clearTimeout(timer)
        reject(new Error(`${this.name} exited (${code}) before '${event}'; see its log`))
      })
    })
  }

  /** Asks the child to stop cleanly (so a CPU profile gets written); kills it after `graceMs`. */
  async stop(graceMs = 15_000): Promise<void> {
    if (!this.running) return
    const timer = setTimeout(() => this.proc.kill('SIGKILL'), graceMs)
    try {
      this.proc.send({ id: 0, op: 'stop' })
    } catch {
      this.proc.kill('SIGTERM')
    }
    await this.exited
    clearTimeout(timer)
  }

  kill(): void {
    if (this.running) this.proc.kill('SIGKILL')
  }
}

/** Every child started by this process, so an interrupted run leaves nothing behind. */
export const children = new Set<Child>()

export function track(child: Child): Child {
  children.add(child)
  return child
}

export function killAll(): void {
  for (const c of children) c.kill()
}

/**
 * With BENCH_CPU_PROFILE set, profiles this process's main thread from the `profileStart` request
 * (sent when the measured load begins, so setup is left out); the returned function writes the file.
 */
async function profiler(): Promise<{ start: () => Promise<void>; write: () => Promise<void> }> {
  const file = process.env.BENCH_CPU_PROFILE
  if (!file) return { start: async () => {}, write: async () => {} }
  const { Session } = await import('node:inspector')
  const { writeFileSync } = await import('node:fs')
  const session = new Session()
  session.connect()
  const post = (method: string, params?: object) =>
    new Promise<unknown>((resolve, reject) =>
      session.post(method, params ?? {}, (err, result) => (err ? reject(err) : resolve(result))),
    )
  let started = false
  return {
    start: async () => {
      if (started) return
      started = true
      await post('Profiler.enable')
      await post('Profiler.setSamplingInterval', { interval: 500 })
      await post('Profiler.start')
    },
    write: async () => {
      if (!started) return
      const { profile } = (await post('Profiler.stop')) as { profile: unknown }
      mkdirSync(dirname(file), { recursive: true })
      writeFileSync(file, JSON.stringify(profile))
      session.disconnect()
    },
  }
}

/** The IPC side of a child entry: answers requests with `handle`, and `stop` with `onStop` then exit. */
export async function serveIpc(
  handle: (op: string, msg: Record<string, unknown>) => Promise<unknown>,
  stopped: () => Promise<void>,
): Promise<void> {
  const profile = await profiler()
  const onStop = async () => {
    await profile.write().catch((err) => console.error('profile failed', err))
    await stopped()
  }
  let stopping = false
  process.on('message', (msg: Record<string, unknown> & { id: number; op: string }) => {
    if (msg.op === 'stop') {
      if (stopping) return
      stopping = true
      void onStop()
        .catch((err) => console.error('stop failed', err))
        .finally(() => process.exit(0))
      return
    }
    const work = msg.op === 'profileStart' ? profile.start() : handle(msg.op, msg)
    work.then(
      (result) => process.send?.({ id: msg.id, ok: true, result }),
      (err: unknown) =>
        process.send?.({ id: msg.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
    )
  })
  // The parent went away (killed or crashed): do not linger.
  process.on('disconnect', () => {
    if (!stopping) void onStop().finally(() => process.exit(0))
  })
}

export function sendEvent(event: string, data: Record<string, unknown> = {}): void {
  process.send?.({ event, ...data })
}

/** Resident set size of a process from /proc (Linux), bytes; undefined elsewhere. */
export async function rssOf(pid: number): Promise<number | undefined> {
  try {
    const { readFile } = await import('node:fs/promises')
    const status = await readFile(`/proc/${pid}/status`, 'utf8')
    const kb = /VmRSS:\s+(\d+) kB/.exec(status)?.[1]
    return kb === undefined ? undefined : Number(kb) * 1024
  } catch {
    return undefined
  }
}
