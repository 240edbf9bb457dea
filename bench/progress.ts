/**
 * A one-line progress bar on stderr, redrawn in place on a terminal. Off a terminal (CI, tests)
 * it prints a plain line every few seconds instead, so logs stay readable.
 */
export class Progress {
  private timer: NodeJS.Timeout | undefined
  private lastPlain = 0
  private readonly tty = Boolean(process.stderr.isTTY)

  constructor(
    private readonly quiet: boolean,
    private readonly render: () => { fraction: number; text: string },
  ) {}

  start(): void {
    if (this.quiet) return
    this.timer = setInterval(() => this.draw(), this.tty ? 250 : 1000)
    this.timer.unref()
  }

  private draw(): void {
    const { fraction, text } = this.render()
    const f = Math.max(0, Math.min(1, fraction))
    if (this.tty) {
      const width = 24
      const full = Math.round(f * width)
      const bar = `${'█'.repeat(full)}${'░'.repeat(width - full)}`
      const line = `${bar} ${String(Math.round(f * 100)).padStart(3)}% ${text}`
      const cols = process.stderr.columns || 120
      process.stderr.write(`\r\x1b[2K${line.slice(0, cols - 1)}`)
    } else if (performance.now() - this.lastPlain > 5000) {
      this.lastPlain = performance.now()
      process.stderr.write(`${String(Math.round(f * 100)).padStart(3)}% ${text}\n`)
    }
  }

  /** A message on its own line (the bar is redrawn below it). */
  log(message: string): void {
    if (this.quiet) return
    if (this.tty) process.stderr.write('\r\x1b[2K')
    process.stderr.write(`${message}\n`)
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    if (!this.quiet && this.tty) process.stderr.write('\r\x1b[2K')
  }
}
