import type { Server } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Every TCP connection a server accepted, plain HTTP or upgraded, until it closes. Node's
 * `server.close()` waits for all of them but ends only idle HTTP ones: a WebSocket that never
 * answers the close handshake, or a request whose headers never finish, would hold it forever.
 */
export function trackConnections(server: Server) {
  const open = new Set<Socket>()
  // One listener for every socket ('close' comes once): a closure and a once-wrapper per
  // socket cost each idle WebSocket about 250 bytes (docs/performance.md, per-socket memory).
  const forget = function (this: Socket) {
    open.delete(this)
  }
  server.on('connection', (socket: Socket) => {
    open.add(socket)
    socket.on('close', forget)
  })
  return {
    get size(): number {
      return open.size
    },
    destroyAll(): void {
      for (const socket of open) socket.destroy()
    },
  }
}
