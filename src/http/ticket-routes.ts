import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { consume } from '../services/rate-limits.js'
import { authenticate, currentUser } from './authenticate.js'
import { authErrors } from './schemas.js'

/** Browsers cannot set headers on a WebSocket: they trade their bearer token for a short single-use ticket. */
export const ticketRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { config, tickets, limiter } = services
  app.post(
    '/ws-ticket',
    {
      onRequest: authenticate(services.auth),
      schema: {
        tags: ['chat'],
        summary: 'A single-use ticket for opening a WebSocket from a browser (?ticket=), valid 30 s',
        security: [{ bearer: [] }],
        response: {
          201: Type.Object({ ticket: Type.String(), expires_in: Type.Integer() }),
          ...authErrors,
        },
      },
    },
    async (req, reply) => {
      const user = currentUser(req)
      const { rateLimits } = config
      if (rateLimits.enabled) {
        const key = `ticket:user:${user.id}`
        await consume(limiter, key, rateLimits.ticketMaxPerUser, rateLimits.ticketWindowSec)
      }
      const ticket = await tickets.issue(user.id, config.ws.ticketTtlSec)
      return reply.code(201).send({ ticket, expires_in: config.ws.ticketTtlSec })
    },
  )
}
