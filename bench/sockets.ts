import WebSocket from 'ws'

/** The server answered the upgrade with an HTTP status instead of 101 (the chaos run checks 5xx). */
export class UpgradeRefused extends Error {
  constructor(
    readonly status: number,
    readonly headers: Record<string, string | string[] | undefined>,
    body: string,
  ) {
    super(`upgrade refused: HTTP ${status} ${body.slice(0, 200)}`)
  }
}

export interface SocketOptions {
  headers?: Record<string, string>
  localAddress?: string
  timeoutMs?: number
}

/**
 * Opens a client socket and resolves once the server's first frame (`ready`) has arrived, i.e.
 * the socket is authenticated and subscribed. Later frames go to `onFrame` as strings.
 */
export function openSocket(
  url: string,
  opts: SocketOptions,
  onFrame?: (frame: string) => void,
): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, {
      headers: opts.headers,
      perMessageDeflate: false,
      skipUTF8Validation: true,
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
    })
    let ready = false
    const timer = setTimeout(() => {
      ws.terminate()
      reject(new Error(`no ready frame within ${opts.timeoutMs ?? 30_000} ms`))
    }, opts.timeoutMs ?? 30_000)
    ws.on('message', (data: Buffer) => {
      if (!ready) {
        ready = true
        clearTimeout(timer)
        const first = data.toString()
        if (!first.startsWith('{"type":"ready"')) {
          ws.terminate()
          reject(new Error(`first frame is not ready: ${first.slice(0, 200)}`))
          return
        }
        resolve(ws)
        return
      }
      onFrame?.(data.toString())
    })
    ws.on('unexpected-response', (_req, res) => {
      clearTimeout(timer)
      let body = ''
      res.on('data', (c: Buffer) => {
        body += c.toString()
      })
      res.on('end', () => reject(new UpgradeRefused(res.statusCode ?? 0, res.headers, body)))
      res.on('error', () => reject(new UpgradeRefused(res.statusCode ?? 0, res.headers, '')))
    })
    ws.on('error', (err) => {
      clearTimeout(timer)
      if (!ready) reject(err)
    })
  })
}

/** Closes sockets politely, then terminates what has not closed after `graceMs`. */
export async function closeAll(sockets: WebSocket[], graceMs = 3000): Promise<void> {
  await Promise.all(
    sockets.map(
      (ws) =>
        new Promise<void>((resolve) => {
          if (ws.readyState === WebSocket.CLOSED) return resolve()
          const timer = setTimeout(() => {
            ws.terminate()
            resolve()
          }, graceMs)
          ws.once('close', () => {
            clearTimeout(timer)
            resolve()
          })
          ws.close(1000)
        }),
    ),
  )
}
