import type { Server } from 'node:http'
import type { Socket } from 'node:net'

/**
 * Every TCP connection a server accepted, plain HTTP or upgraded, until it closes. Node's
 * `server.close()` waits for all of them but ends only idle HTTP ones: a WebSocket that never
 * answers the close handshake, or a request whose headers never finish, would hold it forever.
 */
export function trackConnections(server: Server) {
  const open = new Set<Socket>()
  server.on('connection', (socket: Socket) => {
    open.add(socket)
    socket.once('close', () => open.delete(socket))
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
