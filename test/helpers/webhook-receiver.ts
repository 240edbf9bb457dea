import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { Webhook } from 'standardwebhooks'

/** One request a receiver got, as a Standard Webhooks consumer sees it. */
export interface Received {
  id: string
  timestamp: string
  signature: string
  body: string
  /** Milliseconds since the epoch, when it arrived. */
  at: number
  /** How the receiver answered (undefined: it never did). */
  answered?: number
}

/** How to answer one request: a status (and headers), or `hang` (never answer; the sender times out). */
export type Answer = { status: number; headers?: Record<string, string> } | 'hang'

/**
 * A real HTTP webhook receiver on 127.0.0.1. `answer` decides each response (200 by default);
 * `waitFor` resolves when the requests received so far satisfy a condition (no polling sleeps).
 */
export async function startReceiver(answer: (r: Received, n: number) => Answer = () => ({ status: 200 })) {
  const received: Received[] = []
  const waiters = new Set<() => void>()
  const hanging = new Set<ServerResponse>()
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      const r: Received = {
        id: String(req.headers['webhook-id'] ?? ''),
        timestamp: String(req.headers['webhook-timestamp'] ?? ''),
        signature: String(req.headers['webhook-signature'] ?? ''),
        body: Buffer.concat(chunks).toString('utf8'),
        at: Date.now(),
      }
      received.push(r)
      const a = answer(r, received.length)
      if (a === 'hang') hanging.add(res)
      else {
        r.answered = a.status
        res.writeHead(a.status, a.headers).end()
      }
      for (const w of waiters) w()
    })
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`
  return {
    url,
    received,
    /** Resolves with the requests once `done(received)` holds; rejects after `timeoutMs`. */
    waitFor(done: (all: Received[]) => boolean, timeoutMs = 20_000): Promise<Received[]> {
      if (done(received)) return Promise.resolve(received)
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check)
          reject(new Error(`receiver: condition not met in ${timeoutMs} ms; got ${received.length} requests`))
        }, timeoutMs)
        const check = () => {
          if (!done(received)) return
          clearTimeout(timer)
          waiters.delete(check)
          resolve(received)
        }
        waiters.add(check)
      })
    },
    close: async () => {
      for (const res of hanging) res.destroy()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

export type Receiver = Awaited<ReturnType<typeof startReceiver>>

/** Verifies a request as a receiver would, with the `standardwebhooks` package; returns the parsed body. */
export function verify(secret: string, r: Received): { type: string; timestamp: string; data: unknown } {
  return new Webhook(secret).verify(r.body, {
    'webhook-id': r.id,
    'webhook-timestamp': r.timestamp,
    'webhook-signature': r.signature,
  }) as { type: string; timestamp: string; data: unknown }
}

/** A `whsec_` secret for tests. */
export const TEST_WEBHOOK_SECRET = `whsec_${Buffer.from('0123456789abcdef0123456789abcdef').toString('base64')}`
