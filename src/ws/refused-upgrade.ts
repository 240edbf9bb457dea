import type { FastifyReply, FastifyRequest } from 'fastify'

/**
 * Once Node emits 'upgrade' it no longer manages the socket, so the HTTP response refusing an
 * upgrade does not end it: the connection stays open (CLOSE-WAIT once the client gives up) and
 * holds `server.close()` forever. @fastify/websocket ends it in its onResponse hook, which errors
 * raised before routing (a parameter over the router's limit, a malformed percent-encoding) never
 * reach. Call this before sending such a refusal.
 */
export function endAfterRefusal(req: FastifyRequest, reply: FastifyReply): void {
  // Node's parser sets `upgrade` on the request it handed to the 'upgrade' listeners.
  if ((req.raw as { upgrade?: boolean }).upgrade !== true) return
  const socket = req.raw.socket
  reply.header('connection', 'close')
  // Not end(): a client that never closes its half would keep the socket, and the shutdown, waiting.
  reply.raw.once('finish', () => socket.destroySoon())
}
