import type WebSocket from 'ws'
import { sendEvent, serveIpc } from './proc.js'
import { pool } from './rest.js'
import { closeAll, openSocket } from './sockets.js'

/**
 * Opens idle authenticated sockets for the `connections` scenario. Several of these run at once
 * because one process may hold only as many sockets as its open-file limit (20,000 here).
 * Socket g (global index) signs in as user floor(g / perUser), goes to instance g % instances, and
 * leaves from source address 127.0.0.(1 + g % sourceIps), so ephemeral ports do not run out.
 */
interface OpenRequest {
  wsUrls: string[]
  tokens: string[]
  /** Global index of this worker's first socket, and of the user tokens[0] belongs to. */
  first: number
  firstUser: number
  count: number
  perUser: number
  sourceIps: number
  concurrency: number
}

const sockets: WebSocket[] = []
let opened = 0
let failed = 0
const errors = new Map<string, number>()

await serveIpc(
  async (op, msg) => {
    if (op !== 'open') throw new Error(`unknown op ${op}`)
    const r = msg as unknown as OpenRequest
    const report = setInterval(() => sendEvent('progress', { opened, failed }), 500)
    const t0 = performance.now()
    await pool(
      Array.from({ length: r.count }, (_, j) => r.first + j),
      r.concurrency,
      async (g) => {
        const token = r.tokens[Math.floor(g / r.perUser) - r.firstUser] as string
        try {
          const ws = await openSocket(
            `${r.wsUrls[g % r.wsUrls.length]}/api/v1/chat/ws`,
            {
              headers: { authorization: `Bearer ${token}` },
              localAddress: `127.0.0.${1 + (g % r.sourceIps)}`,
              timeoutMs: 60_000,
            },
            () => undefined,
          )
          ws.on('error', () => undefined)
          sockets.push(ws)
          opened++
        } catch (err) {
          failed++
          const key = (err instanceof Error ? err.message : String(err)).slice(0, 120)
          errors.set(key, (errors.get(key) ?? 0) + 1)
        }
      },
    )
    clearInterval(report)
    const elapsedMs = performance.now() - t0
    sendEvent('progress', { opened, failed })
    return { opened, failed, elapsed_ms: Math.round(elapsedMs), errors: Object.fromEntries(errors) }
  },
  async () => {
    await closeAll(sockets, 5000)
  },
)
sendEvent('listening')
