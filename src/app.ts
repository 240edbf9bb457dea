import cors from '@fastify/cors'
import formbody from '@fastify/formbody'
import helmet from '@fastify/helmet'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { startupWarnings } from './config/config.js'
import { adminRoutes } from './http/admin-routes.js'
import { attachmentRoutes } from './http/attachment-routes.js'
import { authRoutes } from './http/auth-routes.js'
import { blockRoutes } from './http/block-routes.js'
import { chatRoutes } from './http/chat-routes.js'
import { closeConnectionsOnShutdown } from './http/closing.js'
import { exportRoutes } from './http/export-routes.js'
import { refuseInvalidUtf8Json } from './http/json-body.js'
import { moderationRoutes } from './http/moderation-routes.js'
import { registerOpenApi } from './http/openapi.js'
import { opsRoutes } from './http/ops-routes.js'
import { errorHandler, sendProblem } from './http/problem.js'
import { pushRoutes } from './http/push-routes.js'
import { retentionRoutes } from './http/retention-routes.js'
import { richRoutes } from './http/rich-routes.js'
import { storageRoutes } from './http/storage-routes.js'
import { ticketRoutes } from './http/ticket-routes.js'
import { userRoutes } from './http/user-routes.js'
import { webRoutes } from './http/web-routes.js'
import { webhookRoutes } from './http/webhook-routes.js'
import { normalizeIds } from './lib/ids.js'
import type { Services } from './services/index.js'
import { registerGateway } from './ws/gateway.js'
import { endAfterRefusal } from './ws/refused-upgrade.js'

/**
 * The HTTP and WebSocket app over built services, without listening: what `wiring.ts` starts
 * and tests `inject` into. The route plugins are listed at the end.
 */
export async function buildApp(services: Services, logger: Logger): Promise<FastifyInstance> {
  const { config } = services
  for (const warning of startupWarnings(config)) logger.warn(warning)
  if (!config.rateLimits.enabled) {
    logger.warn(
      'RATE_LIMITS=off: login, registration, ticket and message rate limits are disabled (load tests only); size limits and authorization still apply',
    )
  }
  const { http } = config
  const app = Fastify({
    loggerInstance: logger as FastifyBaseLogger,
    bodyLimit: config.bodyLimitBytes,
    // Per-IP limits key on req.ip: X-Forwarded-For counts only when it comes from a trusted proxy.
    trustProxy: http.trustProxy,
    // Slow-loris: a client trickling its headers or body is answered 408 and cut off. Node checks
    // these deadlines every connectionsCheckingInterval (30 s by default: too coarse to be a bound).
    // Upgraded WebSockets leave these timers behind (ws clears the socket timeout).
    requestTimeout: http.requestTimeoutMs,
    connectionTimeout: http.idleTimeoutMs,
    keepAliveTimeout: http.keepAliveTimeoutMs,
    http: {
      headersTimeout: http.headersTimeoutMs,
      connectionsCheckingInterval: Math.min(1000, Math.ceil(http.headersTimeoutMs / 2)),
    },
    // Errors Fastify raises before routing (a malformed percent-encoding in the URL) are problem documents too.
    frameworkErrors: (err, req, reply) => {
      endAfterRefusal(req, reply)
      errorHandler(err, req, reply)
    },
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.setValidatorCompiler(validatorCompiler())
  app.decorateRequest('user', null)
  app.decorateRequest('tokenExp', 0)
  app.setErrorHandler(errorHandler)
  refuseInvalidUtf8Json(app)
  app.setNotFoundHandler((req, reply) =>
    sendProblem(req, reply, {
      status: 404,
      code: 'not_found',
      detail: `no route for ${req.method} ${req.url.split('?')[0]}`,
    }),
  )
  // Before validation and every hook that reads ids (the socket's membership check included).
  app.addHook('preValidation', async (req) => {
    normalizeIds(req.params)
    normalizeIds(req.body)
  })
  closeConnectionsOnShutdown(app)
  // The outbox worker runs while the app does: every instance shares the work (docs/notifications.md).
  app.addHook('onReady', async () => services.outboxWorker.start(app.log))
  app.addHook('onClose', async () => {
    await services.outboxWorker.stop()
    services.webhooks.close()
  })
  app.addHook('onResponse', async (req, reply) => {
    services.metrics.httpDuration
      .labels(req.method, req.routeOptions.url ?? 'unmatched', String(reply.statusCode))
      .observe(reply.elapsedTime / 1000)
  })

  await app.register(helmet, {
    // Swagger UI needs inline scripts and styles; everything else keeps helmet's defaults.
    contentSecurityPolicy: {
      directives: { 'script-src': ["'self'", "'unsafe-inline'"], 'style-src': ["'self'", "'unsafe-inline'"] },
    },
  })
  await app.register(cors, {
    origin: config.corsOrigins.length > 0 ? config.corsOrigins : false,
    credentials: true,
  })
  await app.register(formbody, { bodyLimit: config.bodyLimitBytes })
  await registerOpenApi(app)
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  const opts = { services }
  await app.register(opsRoutes, opts)
  await app.register(authRoutes, { ...opts, prefix: '/api/v1' })
  await app.register(userRoutes, { ...opts, prefix: '/api/v1' })
  await app.register(blockRoutes, { ...opts, prefix: '/api/v1' })
  await app.register(exportRoutes, { ...opts, prefix: '/api/v1' })
  await app.register(chatRoutes, { ...opts, prefix: '/api/v1/chat' })
  await app.register(richRoutes, { ...opts, prefix: '/api/v1/chat' })
  await app.register(retentionRoutes, { ...opts, prefix: '/api/v1/chat' })
  await app.register(ticketRoutes, { ...opts, prefix: '/api/v1/chat' })
  await app.register(attachmentRoutes, { ...opts, prefix: '/api/v1/chat' })
  await app.register(pushRoutes, { ...opts, prefix: '/api/v1' })
  await app.register(storageRoutes, opts)
  await app.register(moderationRoutes, { ...opts, prefix: '/api/v1/chat' })
  await app.register(adminRoutes, { ...opts, prefix: '/api/v1/admin' })
  await app.register(webhookRoutes, { ...opts, prefix: '/api/v1/admin' })
  await registerGateway(app, services)
  await app.register(webRoutes, { root: config.webDir })
  return app
}

/**
 * Querystrings and path parameters arrive as text, so they are coerced to the schema's types
 * (`?limit=20`); bodies are JSON and are not: `{"seq": "5"}` is a 422, not a 5.
 */
function validatorCompiler() {
  const options = {
    allErrors: true,
    useDefaults: true,
    removeAdditional: false,
    addUsedSchema: false,
    strict: false,
  } as const
  const coercing = new Ajv({ ...options, coerceTypes: 'array' })
  const exact = new Ajv({ ...options, coerceTypes: false })
  for (const ajv of [coercing, exact]) addFormats.default(ajv)
  return ({ schema, httpPart }: { schema: object; httpPart?: string }) =>
    (httpPart === 'body' ? exact : coercing).compile(schema)
}
