import { createHash, timingSafeEqual } from 'node:crypto'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import type { FastifyRequest } from 'fastify'
import Type from 'typebox'
import { UnauthorizedError } from '../errors.js'
import type { Services } from '../services/index.js'
import { bearerToken } from './authenticate.js'
import { errors } from './schemas.js'

const Check = Type.Union([Type.Literal('up'), Type.Literal('down'), Type.Literal('not configured')])
const Health = Type.Object({ status: Type.Literal('ok') }, { $id: 'Health' })
const Readiness = Type.Object(
  {
    status: Type.Union([Type.Literal('ready'), Type.Literal('unavailable')]),
    database: Check,
    broker: Check,
  },
  { $id: 'Readiness' },
)
/** How long a load balancer should wait before asking /ready again after a 503. */
const READY_RETRY_AFTER_SEC = 5

export const opsRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const tags = ['ops']
  app.get(
    '/health',
    {
      schema: {
        operationId: 'getHealth',
        tags,
        summary: 'Liveness: the process answers',
        description: 'Always 200 while the process serves requests; it checks no dependency (see /ready).',
        response: { 200: Health },
      },
    },
    async () => ({ status: 'ok' as const }),
  )

  app.get(
    '/ready',
    {
      schema: {
        operationId: 'getReadiness',
        tags,
        summary: 'Readiness: the database and (if configured) Redis answer',
        description:
          '200 when the database answers and Redis, if configured, is connected; otherwise 503 with ' +
          'the same body (which dependency is down) and Retry-After, so a load balancer takes the instance out.',
        response: {
          200: { description: 'Ready to serve', content: { 'application/json': { schema: Readiness } } },
          503: {
            description: 'A dependency is down',
            headers: {
              'Retry-After': { type: 'integer', minimum: 0, description: 'Seconds before asking again' },
            },
            content: { 'application/json': { schema: Readiness } },
          },
        },
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
      if (!ok) reply.header('retry-after', String(READY_RETRY_AFTER_SEC))
      return reply.code(ok ? 200 : 503).send({ status: ok ? 'ready' : 'unavailable', database, broker })
    },
  )

  const { metricsToken } = services.config
  app.get(
    '/metrics',
    {
      onRequest: async (req) => {
        if (metricsToken !== undefined) requireMetricsToken(req, metricsToken)
      },
      schema: {
        operationId: 'getMetrics',
        tags,
        summary: 'Prometheus metrics',
        description:
          'The Prometheus text exposition format. With METRICS_TOKEN set, only a request with ' +
          '`Authorization: Bearer <METRICS_TOKEN>` gets it (others get 401); unset, it is open to ' +
          'whoever reaches the port (docs/api.md says how to deploy either way).',
        security: [{ metricsToken: [] }, {}],
        response: {
          200: {
            description: 'Metrics in the Prometheus text format',
            content: {
              'text/plain': { schema: Type.String({ description: 'Prometheus text format 0.0.4' }) },
            },
          },
          ...errors(401),
        },
      },
    },
    async (_req, reply) => {
      const { registry } = services.metrics
      return reply.type(registry.contentType).send(await registry.metrics())
    },
  )
}

/** Compares digests, so the comparison takes the same time whatever the token's length or content. */
function requireMetricsToken(req: FastifyRequest, expected: string): void {
  const given = bearerToken(req)
  const digest = (s: string) => createHash('sha256').update(s).digest()
  if (given === undefined || !timingSafeEqual(digest(given), digest(expected))) {
    throw new UnauthorizedError('/metrics needs the METRICS_TOKEN bearer token')
  }
}
