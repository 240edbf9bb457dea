import { execFile, execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const execFileAsync = promisify(execFile)

/**
 * A PostgreSQL server of the test's own (initdb in a temp dir, its own port), so a test can stop
 * and restart it without disturbing the shared server. initdb refuses to run as root, so the
 * cluster runs as the `postgres` OS user when the tests run as root (as on CI).
 *
 * The `…Async` forms exist for callers whose event loop must keep running meanwhile (the chaos
 * run drives its clients and TCP proxies in the same process that restarts the server).
 */
export class PrivatePostgres {
  private readonly bin: string
  private readonly parent: string
  private readonly dir: string

  constructor(
    readonly port: number,
    init = true,
  ) {
    const version = readdirSync('/usr/lib/postgresql').sort().at(-1)
    if (!version) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql')
    this.bin = `/usr/lib/postgresql/${version}/bin`
    this.parent = mkdtempSync(join(tmpdir(), 'pg-private-'))
    chmodSync(this.parent, 0o777)
    this.dir = join(this.parent, 'data')
    if (init) this.run('initdb', this.initArgs())
  }

  /** Like the constructor, without blocking the event loop during initdb. */
  static async create(port: number): Promise<PrivatePostgres> {
    const pg = new PrivatePostgres(port, false)
    await pg.runAsync('initdb', pg.initArgs())
    return pg
  }

  /**
   * A hot standby of this (running) server on `port`: `pg_basebackup -R` (which writes
   * standby.signal and primary_conninfo) into a data directory of its own, not started yet.
   * The default pg_hba.conf of initdb lets 127.0.0.1 replicate with trust auth.
   */
  async replicaAsync(port: number): Promise<PrivatePostgres> {
    const replica = new PrivatePostgres(port, false)
    const source = ['-h', '127.0.0.1', '-p', String(this.port), '-U', 'postgres']
    await replica.runAsync('pg_basebackup', [...source, '-D', replica.dir, '-R', '-X', 'stream', '--no-sync'])
    return replica
  }

  /** The postmaster's process id (the first line of postmaster.pid), while it runs. */
  postmasterPid(): number {
    return Number(readFileSync(join(this.dir, 'postmaster.pid'), 'utf8').split('\n')[0])
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }

  /** Returns once the server accepts connections (`pg_ctl -w`). */
  start(): void {
    this.run('pg_ctl', this.startArgs())
  }

  async startAsync(): Promise<void> {
    await this.runAsync('pg_ctl', this.startArgs())
  }

  /** An abrupt stop, as a crash or a network cut looks to clients. */
  stop(): void {
    this.run('pg_ctl', this.stopArgs())
  }

  async stopAsync(): Promise<void> {
    await this.runAsync('pg_ctl', this.stopArgs())
  }

  /** Stops the server if it runs and deletes its data directory. */
  remove(): void {
    try {
      this.stop()
    } catch {
      // not running
    }
    rmSync(this.parent, { recursive: true, force: true })
  }

  private initArgs(): string[] {
    return ['-D', this.dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync']
  }

  private startArgs(): string[] {
    const opts = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.dir} -c fsync=off`
    return ['-D', this.dir, '-o', opts, '-w', '-l', join(this.dir, 'log'), 'start']
  }

  private stopArgs(): string[] {
    return ['-D', this.dir, '-m', 'immediate', '-w', 'stop']
  }

  private command(tool: string, args: string[]): [string, string[]] {
    const asRoot = process.getuid?.() === 0
    const cmd = asRoot ? 'runuser' : join(this.bin, tool)
    return [cmd, asRoot ? ['-u', 'postgres', '--', join(this.bin, tool), ...args] : args]
  }

  private run(tool: string, args: string[]): void {
    const [cmd, argv] = this.command(tool, args)
    execFileSync(cmd, argv, { stdio: 'pipe' })
  }

  private async runAsync(tool: string, args: string[]): Promise<void> {
    const [cmd, argv] = this.command(tool, args)
    await execFileAsync(cmd, argv)
  }
}
