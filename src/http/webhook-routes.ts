import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { OUTBOX_EVENT_TYPES } from '../protocol/outbox-events.js'
import type { Services } from '../services/index.js'
import { SECRET_PATTERN } from '../services/webhook-signature.js'
import { authenticate, currentUser, requireOperator } from './authenticate.js'
import { authErrors, errors, IdParams, Uuid } from './schemas.js'

const EventType = Type.Unsafe<string>({
  type: 'string',
  enum: OUTBOX_EVENT_TYPES,
  description: 'An event type (docs/notifications.md, "Events")',
})
const webhookProperties = {
  id: Uuid,
  url: Type.String({ format: 'uri', maxLength: 2048 }),
  events: Type.Array(EventType, {
    maxItems: OUTBOX_EVENT_TYPES.length,
    description: 'The event types it receives; empty: every type',
  }),
  description: Type.String({ maxLength: 200 }),
  created_at: Type.String({ format: 'date-time' }),
}
const Webhook = Type.Object(webhookProperties, { $id: 'Webhook' })
const NewWebhook = Type.Object(
  {
    ...webhookProperties,
    secret: Type.String({
      maxLength: 100,
      description: 'The signing secret (`whsec_…`). Shown in this answer only: keep it now.',
    }),
  },
  { $id: 'NewWebhook' },
)
const WebhookInput = Type.Object(
  {
    url: Type.String({
      format: 'uri',
      minLength: 1,
      maxLength: 2048,
      description:
        'http(s) only; private, loopback and link-local addresses are refused unless WEBHOOK_ALLOW_PRIVATE=true ' +
        '(a name is checked on the address it resolves to at every delivery)',
    }),
    events: Type.Optional(Type.Array(EventType, { maxItems: OUTBOX_EVENT_TYPES.length, uniqueItems: true })),
    secret: Type.Optional(
      Type.String({
        pattern: SECRET_PATTERN,
        maxLength: 100,
        description: '`whsec_` + base64 of 24 to 64 random bytes; omitted: one is generated',
      }),
    ),
    description: Type.Optional(Type.String({ maxLength: 200 })),
  },
  { additionalProperties: false },
)
const WebhookTest = Type.Object(
  {
    webhook_id: Type.String({ maxLength: 64, description: 'The `webhook-id` the test event was sent with' }),
    delivered: Type.Boolean({ description: 'True when the endpoint answered 2xx' }),
    status_code: Type.Union([Type.Integer({ minimum: 100, maximum: 599, format: 'int32' }), Type.Null()]),
    error: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'WebhookTest' },
)

/** Webhook endpoints (issue 16, docs/notifications.md): operators only. */
export const webhookRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { webhooks } = services
  app.addHook('onRequest', authenticate(services.auth))
  app.addHook('preHandler', requireOperator)
  // The `operator` scope only documents who may call (OWASP API5: admin routes stand apart).
  const common = { tags: ['webhooks'], security: [{ bearer: ['operator'] }] }
  const denied = { ...errors(403), ...authErrors }

  app.post(
    '/webhooks',
    {
      schema: {
        ...common,
        operationId: 'createWebhook',
        summary: 'Register a webhook endpoint',
        description:
          'Every event of the chosen types is POSTed to the URL, signed the Standard Webhooks way with the ' +
          'secret (shown in this answer only). At most 100 endpoints.',
        body: WebhookInput,
        response: { 201: NewWebhook, ...denied },
      },
    },
    async (req, reply) => reply.code(201).send(await webhooks.create(currentUser(req).id, req.body)),
  )

  app.get(
    '/webhooks',
    {
      schema: {
        ...common,
        operationId: 'listWebhooks',
        summary: 'List the webhook endpoints',
        description: 'Newest first; secrets are never shown again.',
        response: {
          200: Type.Object({ items: Type.Array(Webhook, { maxItems: 100 }) }, { $id: 'WebhookList' }),
          ...denied,
        },
      },
    },
    async () => ({ items: await webhooks.list() }),
  )

  app.delete(
    '/webhooks/:id',
    {
      schema: {
        ...common,
        operationId: 'deleteWebhook',
        summary: 'Delete a webhook endpoint',
        description: 'Its deliveries still pending end without being sent (counted as `gone`).',
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errors(404), ...denied },
      },
    },
    async (req, reply) => {
      await webhooks.remove(req.params.id)
      return reply.code(204).send(null)
    },
  )

  app.post(
    '/webhooks/:id/test',
    {
      schema: {
        ...common,
        operationId: 'testWebhook',
        summary: 'Send a test event to a webhook endpoint',
        description:
          'Sends one signed `webhook.test` event now (not through the outbox, not retried) and answers how ' +
          'the endpoint responded.',
        params: IdParams,
        response: { 200: WebhookTest, ...errors(404), ...denied },
      },
    },
    async (req) => webhooks.test(req.params.id),
  )
}
