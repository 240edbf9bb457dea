import { randomUUID } from 'node:crypto'
import websocket from '@fastify/websocket'
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import Type from 'typebox'
import { ForbiddenError, NotFoundError, RateLimitedError, UnauthorizedError } from '../errors.js'
import { bearerToken, currentUser } from '../http/authenticate.js'
import { isUuid } from '../lib/ids.js'
import { CloseCode } from '../protocol/close-codes.js'
import type { Services } from '../services/index.js'
import { Connection, type Registry } from './connection.js'
import { ExpiryWheel } from './expiry.js'

declare module 'fastify' {
  interface FastifyRequest {
    chatConnection?: Connection
  }
}

/**
 * The WebSocket gateway. Everything that can refuse a socket (token or ticket, Origin, membership,
 * connection limit) runs in Fastify hooks *before* the upgrade, so a refusal is a plain HTTP
 * status, and the socket is subscribed before the client sees it open.
 */
export async function registerGateway(app: FastifyInstance, services: Services): Promise<void> {
  const { config } = services
  const connections = new Set<Connection>()
  const registry: Registry = { open: connections, expiry: new ExpiryWheel((c) => c.expired()) }
  // After a broker outage, every feed re-reads the store: live events published meanwhile were lost.
  services.broker.onReconnect?.(() => {
    for (const c of connections)
      void c.follower.catchUp().catch((err) => app.log.warn({ err }, 'catch-up failed'))
  })

  let shuttingDown = false
  await app.register(websocket, {
    // Replaces the plugin's own preClose, which closes every socket at once without a code.
    preClose: async () => {
      shuttingDown = true
      clearInterval(heartbeat)
      // No new sockets; the open ones finish what they are doing. Without an 'upgrade' listener
      // Node serves an upgrade request as a plain one, so its 503 ends the connection like any
      // other response (the plugin's own preClose removes its listener too; this one replaces it).
      app.server.removeAllListeners('upgrade')
      app.websocketServer.close()
      await Promise.all([...connections].map((c) => c.drain()))
      // REST sends in flight commit too, so their events are out before the sockets close.
      await services.messages.flushed()
      for (const c of connections) c.close(CloseCode.GoingAway, 'server shutting down')
      for (const ws of app.websocketServer.clients)
        if (ws.readyState === ws.OPEN) ws.close(CloseCode.GoingAway, 'server shutting down')
    },
    options: {
      maxPayload: config.ws.maxFrameBytes,
      // Browsers may pass the token as the subprotocol pair ['bearer', <jwt>]; echo only 'bearer'.
      handleProtocols: (protocols: Set<string>) => (protocols.has('bearer') ? 'bearer' : false),
    },
  })

  const heartbeat = setInterval(() => {
    for (const c of connections) {
      if (!c.alive) c.terminate()
      else c.ping()
    }
  }, config.ws.heartbeatMs)
  heartbeat.unref()

  const checkOrigin = async (req: FastifyRequest) => {
    const origin = req.headers.origin
    if (origin === undefined) return
    if (config.wsOrigins.includes(origin) || config.wsOrigins.includes('*')) return
    // Same-origin pages are always allowed; anything else must be listed (cross-site WebSocket hijacking).
    let host: string | undefined
    try {
      host = new URL(origin).host
    } catch {
      host = undefined
    }
    if (host !== undefined && host === req.headers.host) return
    throw new ForbiddenError(`origin ${origin} is not allowed`)
  }

  const authenticateUpgrade = async (req: FastifyRequest) => {
    await checkOrigin(req)
    const { ticket } = req.query as { ticket?: string }
    if (ticket !== undefined) {
      const userId = await services.tickets.redeem(ticket)
      const user = userId === undefined ? undefined : await services.users.findSignedIn(userId)
      if (!user) throw new UnauthorizedError('invalid or expired ticket')
      req.user = user
      req.tokenExp = Math.floor(Date.now() / 1000) + config.jwt.accessTtlSec
      return
    }
    const token = bearerToken(req) ?? protocolToken(req)
    if (!token) throw new UnauthorizedError('missing bearer token or ticket')
    const { user, exp } = await services.auth.authenticate(token)
    req.user = user
    req.tokenExp = exp
  }

  const prepare = (bound: boolean) => async (req: FastifyRequest, _reply: FastifyReply) => {
    const user = currentUser(req)
    const params = req.params as { conversation_id?: string }
    const query = req.query as { since_seq?: number; resume?: boolean }
    if (bound) {
      if (!params.conversation_id || !isUuid(params.conversation_id)) throw new NotFoundError('conversation')
      await services.conversations.requireMember(user.id, params.conversation_id)
    }
    // A lease per socket, taken before the upgrade and held until the TCP connection closes: exact
    // across instances, even for opens that all arrive at once (services/ports.ts ConnectionLeases).
    const socketId = randomUUID()
    if (!(await services.connectionLeases.acquire(user.id, socketId, config.ws.maxConnectionsPerUser))) {
      throw new RateLimitedError(5)
    }
    // The server's logger, not the request's: the socket outlives the request by hours.
    const connection = new Connection(
      user.id,
      req.tokenExp,
      bound ? params.conversation_id : undefined,
      services,
      app.log,
      query.resume === true,
      socketId,
    )
    req.chatConnection = connection
    connection.endWith(req.raw.socket)
    try {
      await connection.open(query.since_seq)
    } catch (err) {
      connection.ended()
      throw err
    }
  }

  const attach = (socket: import('ws').WebSocket, req: FastifyRequest) => {
    const connection = req.chatConnection
    if (!connection) return socket.close(CloseCode.PolicyViolation, 'not prepared')
    if (shuttingDown) return socket.close(CloseCode.GoingAway, 'server shutting down')
    releaseUpgrade(socket)
    connection.attach(socket, registry)
  }

  const querystring = Type.Object({
    ticket: Type.Optional(Type.String({ maxLength: 256 })),
    since_seq: Type.Optional(Type.Integer({ minimum: 0, maximum: Number.MAX_SAFE_INTEGER })),
    // User socket: hold messages until the client's first frame (its `sync`), so a resume never
    // interleaves replayed and live messages.
    resume: Type.Optional(Type.Boolean()),
  })

  app.get(
    '/api/v1/chat/ws/conversations/:conversation_id',
    {
      websocket: true,
      schema: { querystring },
      preValidation: authenticateUpgrade,
      preHandler: prepare(true),
    },
    attach,
  )

  app.get(
    '/api/v1/chat/ws',
    {
      websocket: true,
      schema: { querystring },
      preValidation: authenticateUpgrade,
      preHandler: prepare(false),
    },
    attach,
  )
}

/** `Sec-WebSocket-Protocol: bearer, <jwt>`: how a browser can send a token without a ticket. */
function protocolToken(req: FastifyRequest): string | undefined {
  const header = req.headers['sec-websocket-protocol']
  if (typeof header !== 'string') return undefined
  const parts = header.split(',').map((p) => p.trim())
  return parts[0] === 'bearer' && parts[1] ? parts[1] : undefined
}

/**
 * Lets go of the upgrade's HTTP objects, which would otherwise live as long as the socket: the
 * TCP socket still points at the upgrade's ServerResponse (and so at the request, its headers
 * and the token), and @fastify/websocket's 'error' listener holds the Fastify request and reply.
 * Measured: about half of an idle socket's heap (docs/performance.md, `connections`). Errors are
 * then handled by the listener `Connection.attach` adds.
 */
function releaseUpgrade(socket: import('ws').WebSocket): void {
  socket.removeAllListeners('error')
  const raw = (
    socket as unknown as { _socket?: { _httpMessage?: { detachSocket?(s: unknown): void } | null } }
  )._socket
  const response = raw?._httpMessage
  if (raw && response) {
    response.detachSocket?.(raw)
    raw._httpMessage = null
  }
  if (raw) dropClearedTimeout(raw)
}

let kTimeout: symbol | undefined

/**
 * The HTTP server's idle timeout (`connectionTimeout`) was set on the TCP socket; ws cleared it
 * (`setTimeout(0)`), but the socket still points at the spent `Timeout`, about 170 bytes per
 * socket for its life. Node keeps it under a private symbol; `null` is what a fresh socket has.
 */
function dropClearedTimeout(raw: object): void {
  const socket = raw as { timeout?: number; [k: symbol]: unknown }
  if (socket.timeout !== 0) return
  kTimeout ??= Object.getOwnPropertySymbols(raw).find((s) => s.description === 'timeout')
  if (kTimeout !== undefined && kTimeout in socket) socket[kTimeout] = null
}
