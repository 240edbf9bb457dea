import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { consume } from '../services/rate-limits.js'
import { authenticate, currentUser } from './authenticate.js'
import { sendQuota } from './problem.js'
import { authErrors, rateLimited, withRateLimitHeaders } from './schemas.js'

const WsTicket = Type.Object(
  {
    ticket: Type.String({ description: 'Pass as `?ticket=` when opening the socket; single use' }),
    expires_in: Type.Integer({ description: 'Seconds the ticket stays valid' }),
  },
  { $id: 'WsTicket' },
)

/** Browsers cannot set headers on a WebSocket: they trade their bearer token for a short single-use ticket. */
export const ticketRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { config, tickets, limiter } = services
  app.post(
    '/ws-ticket',
    {
      onRequest: authenticate(services.auth),
      schema: {
        operationId: 'createWsTicket',
        tags: ['chat'],
        summary: 'A ticket for opening a WebSocket from a browser',
        description:
          'Browsers cannot set an Authorization header on a WebSocket: they open ' +
          '`/api/v1/chat/ws?ticket=…` with this single-use ticket instead, within WS_TICKET_TTL seconds. ' +
          'Limited per user (TICKET_MAX_PER_USER in TICKET_WINDOW_SEC), announced in the RateLimit-* headers.',
        security: [{ bearer: [] }],
        response: {
          201: withRateLimitHeaders(WsTicket, 'The ticket'),
          ...rateLimited(),
          ...authErrors,
        },
      },
    },
    async (req, reply) => {
      const user = currentUser(req)
      const { rateLimits } = config
      const quota = rateLimits.enabled
        ? await consume(
            limiter,
            `ticket:user:${user.id}`,
            rateLimits.ticketMaxPerUser,
            rateLimits.ticketWindowSec,
          )
        : undefined
      const ticket = await tickets.issue(user.id, config.ws.ticketTtlSec)
      // Announced with the success (and the 429) only: the documented responses that carry them.
      if (quota) sendQuota(reply, quota)
      return reply.code(201).send({ ticket, expires_in: config.ws.ticketTtlSec })
    },
  )
}
