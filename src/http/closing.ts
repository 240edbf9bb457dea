import type { FastifyInstance } from 'fastify'

/**
 * Node's `server.close()` ends only the keep-alive connections idle at that moment. One answering
 * a request then stays open for HTTP_KEEP_ALIVE_TIMEOUT_MS, and a client
 * reusing it meanwhile is cut off mid-request. Fastify marks requests that *arrive* while closing
 * (Connection: close, 503); this covers those already in flight when the close begins. A response
 * whose headers were written before the close began still leaves its connection to the
 * SHUTDOWN_TIMEOUT_MS deadline (no route here streams long enough for that to matter).
 */
export function closeConnectionsOnShutdown(app: FastifyInstance): void {
  let closing = false
  // Registered before the gateway's, so it runs before the WebSocket drain, not after.
  app.addHook('preClose', async () => {
    closing = true
  })
  app.addHook('onSend', async (_req, reply, payload) => {
    // Node then ends the connection once this response is written, and the client does not reuse it.
    if (closing) reply.header('connection', 'close')
    return payload
  })
}
