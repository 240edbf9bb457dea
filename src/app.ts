import cors from '@fastify/cors'
import formbody from '@fastify/formbody'
import helmet from '@fastify/helmet'
import swagger from '@fastify/swagger'
import swaggerUi from '@fastify/swagger-ui'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { AccessTokens } from './auth/jwt.js'
import type { Broker } from './broker/broker.js'
import type { Config } from './config/config.js'
import { authRoutes } from './http/auth-routes.js'
import { chatRoutes } from './http/chat-routes.js'
import { opsRoutes } from './http/ops-routes.js'
import { errorHandler, sendProblem } from './http/problem.js'
import { userRoutes } from './http/user-routes.js'
import { createMetrics, type Metrics } from './observability/metrics.js'
import { AuthService } from './services/auth.js'
import { ConversationService } from './services/conversations.js'
import { MessageService } from './services/messages.js'
import { MemoryRateLimiter, type RateLimiter } from './services/rate-limiter.js'
import { MemorySendRate, type SendRate } from './services/send-rate.js'
import { UserService } from './services/users.js'
import type { Database } from './store/db.js'
import { registerGateway } from './ws/gateway.js'
import { MemoryPresence, type Presence } from './ws/presence.js'
import { MemoryTicketStore, type TicketStore } from './ws/tickets.js'

export interface AppDeps {
  config: Config
  database: Database
  broker: Broker
  logger: Logger
  /** Shared through Redis when configured; in-process otherwise. */
  limiter?: RateLimiter
  tickets?: TicketStore
  presence?: Presence
  sendRate?: SendRate
}

export interface AppServices {
  config: Config
  database: Database
  broker: Broker
  metrics: Metrics
  tokens: AccessTokens
  users: UserService
  auth: AuthService
  conversations: ConversationService
  messages: MessageService
  limiter: RateLimiter
  tickets: TicketStore
  presence: Presence
}

export function createServices(deps: AppDeps): AppServices {
  const { config, database, broker } = deps
  const db = database.db
  const metrics = createMetrics(broker)
  const tokens = new AccessTokens(config.jwt)
  const users = new UserService(db, broker)
  const conversations = new ConversationService(db, broker, { groupMaxMembers: config.groupMaxMembers })
  const { rateLimits } = config
  const sendRate = deps.sendRate ?? new MemorySendRate(rateLimits.messagePerSec, rateLimits.messageBurst)
  return {
    config,
    database,
    broker,
    metrics,
    tokens,
    users,
    auth: new AuthService(db, users, tokens, config.jwt.refreshTtlSec),
    conversations,
    messages: new MessageService(db, broker, conversations, {
      maxChars: config.messageMaxChars,
      batchMax: config.messageBatchMax,
      sendRate: rateLimits.enabled ? sendRate : undefined,
    }),
    limiter: deps.limiter ?? new MemoryRateLimiter(),
    tickets: deps.tickets ?? new MemoryTicketStore(),
    presence: deps.presence ?? new MemoryPresence(),
  }
}

/** Builds the HTTP and WebSocket app without listening: what `server.ts` runs and tests `inject` into. */
export async function buildApp(deps: AppDeps): Promise<{ app: FastifyInstance; services: AppServices }> {
  const services = createServices(deps)
  const { config } = deps
  if (!config.rateLimits.enabled) {
    deps.logger.warn(
      'RATE_LIMITS=off: login, registration, ticket and message rate limits are disabled (load tests only); size limits and authorization still apply',
    )
  }
  const { http } = config
  const app = Fastify({
    loggerInstance: deps.logger as FastifyBaseLogger,
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
      errorHandler(err, req, reply)
    },
  }).withTypeProvider<TypeBoxTypeProvider>()

  app.setValidatorCompiler(validatorCompiler())
  app.decorateRequest('user', null)
  app.decorateRequest('tokenExp', 0)
  app.setErrorHandler(errorHandler)
  app.setNotFoundHandler((req, reply) =>
    sendProblem(req, reply, {
      status: 404,
      code: 'not_found',
      detail: `no route for ${req.method} ${req.url.split('?')[0]}`,
    }),
  )
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
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: 'Chat API',
        version: '1.0.0',
        description: 'Real-time chat backend. WebSocket protocol: docs/asyncapi.yaml',
      },
      components: {
        securitySchemes: {
          bearer: { type: 'oauth2', flows: { password: { tokenUrl: '/api/v1/auth/login', scopes: {} } } },
        },
      },
    },
  })
  await app.register(swaggerUi, { routePrefix: '/docs' })
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger())

  const opts = { services }
  await app.register(opsRoutes, opts)
  await app.register(authRoutes, { ...opts, prefix: '/api/v1' })
  await app.register(userRoutes, { ...opts, prefix: '/api/v1' })
  await app.register(chatRoutes, { ...opts, prefix: '/api/v1/chat' })
  await registerGateway(app, services)
  return { app, services }
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
