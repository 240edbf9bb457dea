import WebSocket from 'ws'

export interface Frame {
  type: string
  [key: string]: unknown
}

/**
 * A `ws` client that records every frame, so tests wait on events (`next`, `waitFor`) with a
 * deadline instead of sleeping.
 */
export class TestSocket {
  readonly frames: Frame[] = []
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void; from: number }[] = []
  closed: { code: number; reason: string } | undefined
  private closeWaiters: ((c: { code: number; reason: string }) => void)[] = []

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame
      this.frames.push(frame)
      this.waiters = this.waiters.filter((w) => {
        if (w.pred(frame)) {
          w.resolve(frame)
          return false
        }
        return true
      })
    })
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
      for (const w of this.closeWaiters.splice(0)) w(this.closed)
    })
  }

  /** Opens a socket; rejects with `{status}` when the server refuses the upgrade. */
  static open(url: string, opts: { token?: string; headers?: Record<string, string>; protocols?: string[] } = {}) {
    const headers = { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers }
    const ws = new WebSocket(url.replace(/^http/, 'ws'), opts.protocols ?? [], { headers })
    const socket = new TestSocket(ws)
    return new Promise<TestSocket>((resolve, reject) => {
      ws.once('open', () => resolve(socket))
      ws.once('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', (c: Buffer) => {
          body += c.toString()
        })
        res.on('end', () => reject(Object.assign(new Error(`refused: ${res.statusCode}`), { status: res.statusCode, body })))
      })
      ws.once('error', reject)
    })
  }

  send(frame: unknown): void {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame))
  }

  /** The first frame (already received or future) matching `pred`, counting from index `from`. */
  waitFor(pred: (f: Frame) => boolean, { timeoutMs = 5000, from = 0 } = {}): Promise<Frame> {
    const found = this.frames.slice(from).find(pred)
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done)
        reject(new Error(`no matching frame within ${timeoutMs} ms; got: ${JSON.stringify(this.frames.slice(-5))}`))
      }, timeoutMs)
      const done = (f: Frame) => {
        clearTimeout(timer)
        resolve(f)
      }
      this.waiters.push({ pred, resolve: done, from })
    })
  }

  /** Waits until `n` frames of `type` have arrived and returns them. */
  async collect(type: string, n: number, timeoutMs = 10000): Promise<Frame[]> {
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const got = this.frames.filter((f) => f.type === type)
      if (got.length >= n) return got
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`only ${got.length}/${n} ${type} frames within ${timeoutMs} ms`)
      await this.waitFor((f) => f.type === type, { timeoutMs: left, from: this.frames.length }).catch(() => undefined)
    }
  }

  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket not closed within ${timeoutMs} ms`)), timeoutMs)
      this.closeWaiters.push((c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
  }

  /** Round-trips a ping, so every frame the server sent before it has arrived. */
  async settle(): Promise<void> {
    const from = this.frames.length
    this.send({ type: 'ping' })
    await this.waitFor((f) => f.type === 'pong', { from })
  }

  close(): void {
    this.ws.close()
  }
}
