import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'

const Check = Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('not configured')])
const Readiness = Type.Object({ status: Type.String(), database: Check, broker: Check })

export const opsRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.get(
    '/health',
    {
      schema: {
        tags: ['ops'],
        summary: 'Liveness: the process answers',
        response: { 200: Type.Object({ status: Type.String() }) },
      },
    },
    async () => ({ status: 'ok' }),
  )

  app.get(
    '/ready',
    {
      schema: {
        tags: ['ops'],
        summary: 'Readiness: 200 when the database and (if configured) Redis answer, else 503',
        response: { 200: Readiness, 503: Readiness },
      },
    },
    async (_req, reply) => {
      const database = await services.database
        .ping()
        .then(() => 'up' as const)
        .catch(() => 'down' as const)
      const broker =
        services.broker.kind === 'memory' ? 'not configured' : services.broker.healthy() ? 'up' : 'down'
      const ok = database === 'up' && broker !== 'down'
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', database, broker })
    },
  )

  app.get(
    '/metrics',
    { schema: { tags: ['ops'], summary: 'Prometheus metrics', produces: ['text/plain'] } },
    async (_req, reply) => {
      const { registry } = services.metrics
      return reply.type(registry.contentType).send(await registry.metrics())
    },
  )
}
