import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { Latency, type LatencySummary } from './hist.js'

/**
 * `--webhook`: a receiver on 127.0.0.1 that the chat server's WEBHOOK_URL points at, so a run
 * shows what the outbox costs the send path and how fast it delivers. It answers 204 at once
 * and counts `message.created` deliveries: unique webhook-ids, duplicates, and the lag from the
 * event's `timestamp` (its commit) to arrival. It does not verify signatures (the tests do);
 * it stays in the bench's process, whose CPU the report shows apart.
 */
export class WebhookReceiver {
  private readonly seen = new Set<string>()
  private duplicates = 0
  private stepLag = new Latency()
  private readonly server = http.createServer((req, res) => this.onRequest(req, res))
  url = ''

  async start(): Promise<void> {
    this.server.keepAliveTimeout = 60_000
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve))
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`
  }

  /** Unique `message.created` deliveries so far. */
  get received(): number {
    return this.seen.size
  }

  get duplicated(): number {
    return this.duplicates
  }

  /** The lag of the deliveries since the last call, and starts a new window. */
  takeLag(): LatencySummary {
    const s = this.stepLag.summary()
    this.stepLag = new Latency()
    return s
  }

  /** Waits until `count` unique deliveries arrived or `timeoutMs` passed; returns the ms waited. */
  async waitFor(count: number, timeoutMs: number): Promise<number> {
    const t0 = performance.now()
    while (this.seen.size < count && performance.now() - t0 < timeoutMs) {
      await new Promise((r) => setTimeout(r, 50))
    }
    return Math.round(performance.now() - t0)
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      res.writeHead(204).end()
      const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type: string; timestamp: string }
      if (body.type !== 'message.created') return
      const id = String(req.headers['webhook-id'])
      if (this.seen.has(id)) {
        this.duplicates++
        return
      }
      this.seen.add(id)
      this.stepLag.recordMs(Date.now() - Date.parse(body.timestamp))
    })
  }
}
