import { execFileSync } from 'node:child_process'
import { chmodSync, mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/**
 * A PostgreSQL server of the test's own (initdb in a temp dir, its own port), so a test can stop
 * and restart it without disturbing the shared server. initdb refuses to run as root, so the
 * cluster runs as the `postgres` OS user when the tests run as root (as on CI).
 */
export class PrivatePostgres {
  private readonly bin: string
  private readonly dir: string

  constructor(readonly port: number) {
    const version = readdirSync('/usr/lib/postgresql').sort().at(-1)
    if (!version) throw new Error('no PostgreSQL server binaries under /usr/lib/postgresql')
    this.bin = `/usr/lib/postgresql/${version}/bin`
    const parent = mkdtempSync(join(tmpdir(), 'pg-private-'))
    chmodSync(parent, 0o777)
    this.dir = join(parent, 'data')
    this.run('initdb', ['-D', this.dir, '-U', 'postgres', '--auth=trust', '-E', 'UTF8', '--no-sync'])
  }

  get url(): string {
    return `postgres://postgres@127.0.0.1:${this.port}/postgres`
  }

  /** Returns once the server accepts connections (`pg_ctl -w`). */
  start(): void {
    const opts = `-p ${this.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories=${this.dir} -c fsync=off`
    this.run('pg_ctl', ['-D', this.dir, '-o', opts, '-w', '-l', join(this.dir, 'log'), 'start'])
  }

  /** An abrupt stop, as a crash or a network cut looks to clients. */
  stop(): void {
    this.run('pg_ctl', ['-D', this.dir, '-m', 'immediate', '-w', 'stop'])
  }

  private run(tool: string, args: string[]): void {
    const asRoot = process.getuid?.() === 0
    const cmd = asRoot ? 'runuser' : join(this.bin, tool)
    const argv = asRoot ? ['-u', 'postgres', '--', join(this.bin, tool), ...args] : args
    execFileSync(cmd, argv, { stdio: 'pipe' })
  }
}
