import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { consume } from '../services/rate-limits.js'
import { authenticate, currentUser } from './authenticate.js'
import { sendQuota } from './problem.js'
import { authErrors, errors, IdParams, Mute, RATE_LIMIT_HEADERS, rateLimited } from './schemas.js'

/** Registrations (new or repeated) one user may make per hour: each one resolves the endpoint's host. */
export const SUBSCRIBE_MAX_PER_HOUR = 30

const Base64Url = (maxLength: number, description: string) =>
  Type.String({ minLength: 1, maxLength, pattern: '^[A-Za-z0-9_-]+={0,2}$', description })

const SubscriptionBody = Type.Object(
  {
    endpoint: Type.String({
      minLength: 1,
      maxLength: 1024,
      format: 'uri',
      description: 'The push service URL the browser gave (https; it must reach a public address)',
    }),
    expirationTime: Type.Optional(
      Type.Union([Type.Integer({ minimum: 0, maximum: 8.64e15, format: 'int64' }), Type.Null()], {
        description: 'When the browser says the subscription ends (ms since the epoch); null: never',
      }),
    ),
    keys: Type.Object(
      {
        p256dh: Base64Url(128, "The browser's P-256 public key (uncompressed point, base64url)"),
        auth: Base64Url(64, 'The 16-byte authentication secret (base64url)'),
      },
      { additionalProperties: false },
    ),
  },
  { additionalProperties: false, description: "The browser's `PushSubscription.toJSON()`" },
)

const PushSubscription = Type.Object(
  {
    id: Type.String({ format: 'uuid' }),
    endpoint: Type.String(),
    created_at: Type.String({ format: 'date-time' }),
    expires_at: Type.Union([Type.String({ format: 'date-time' }), Type.Null()]),
  },
  { $id: 'PushSubscription', description: 'A registered browser (its keys are not shown again)' },
)
const PushSubscriptionList = Type.Object(
  { items: Type.Array(PushSubscription) },
  { $id: 'PushSubscriptionList' },
)
const VapidPublicKey = Type.Object(
  {
    public_key: Type.String({
      description: 'Pass as `applicationServerKey` to `pushManager.subscribe()` (base64url, 65 bytes)',
    }),
  },
  { $id: 'VapidPublicKey' },
)
const MuteBody = Type.Object(
  {
    until: Type.Optional(
      Type.String({
        format: 'date-time',
        maxLength: 64,
        description: 'When the mute ends (in the future); leave it out to mute until you unmute',
      }),
    ),
  },
  { additionalProperties: false },
)
const withQuota = (description: string) => ({
  description,
  headers: RATE_LIMIT_HEADERS,
  content: { 'application/json': { schema: PushSubscription } },
})

/** Web Push subscriptions and the VAPID key (tag `push`), and a member's mute of a conversation (tag `chat`). */
export const pushRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { push, conversations, config, limiter } = services
  app.addHook('onRequest', authenticate(services.auth))
  const pushCommon = { tags: ['push'], security: [{ bearer: [] }] }
  const chatCommon = { tags: ['chat'], security: [{ bearer: [] }] }

  app.get(
    '/push/vapid-public-key',
    {
      schema: {
        ...pushCommon,
        operationId: 'getVapidPublicKey',
        summary: 'The VAPID public key browsers subscribe with',
        description:
          'The same on every instance (VAPID_PUBLIC_KEY, or the pair generated once and kept in the database).',
        response: { 200: VapidPublicKey, ...authErrors },
      },
    },
    async () => ({ public_key: (await push.vapidKeys()).publicKey }),
  )

  app.post(
    '/users/me/push-subscriptions',
    {
      schema: {
        ...pushCommon,
        operationId: 'createPushSubscription',
        summary: 'Register this browser for push notifications',
        description:
          "Send the browser's `PushSubscription` as JSON. 201 when new, 200 when this endpoint was already " +
          'yours (its keys are replaced); an endpoint registered by another account moves to yours. The endpoint ' +
          'must be https and reach a public address (422). At most PUSH_MAX_SUBSCRIPTIONS_PER_USER per user (409: ' +
          `delete one first); ${SUBSCRIBE_MAX_PER_HOUR} registrations per hour, announced in the RateLimit-* headers.`,
        body: SubscriptionBody,
        response: {
          200: withQuota('Already registered: keys updated'),
          201: withQuota('Registered'),
          ...errors(409),
          ...rateLimited(),
          ...authErrors,
        },
      },
    },
    async (req, reply) => {
      const me = currentUser(req)
      const quota = config.rateLimits.enabled
        ? await consume(limiter, `push-subscribe:user:${me.id}`, SUBSCRIBE_MAX_PER_HOUR, 3600)
        : undefined
      const { subscription, created } = await push.subscribe(me.id, req.body)
      if (quota) sendQuota(reply, quota)
      return reply.code(created ? 201 : 200).send(subscription)
    },
  )

  app.get(
    '/users/me/push-subscriptions',
    {
      schema: {
        ...pushCommon,
        operationId: 'listPushSubscriptions',
        summary: 'Your registered browsers',
        description: 'Oldest first; at most PUSH_MAX_SUBSCRIPTIONS_PER_USER.',
        response: { 200: PushSubscriptionList, ...authErrors },
      },
    },
    async (req) => ({ items: await push.list(currentUser(req).id) }),
  )

  app.delete(
    '/users/me/push-subscriptions/:id',
    {
      schema: {
        ...pushCommon,
        operationId: 'deletePushSubscription',
        summary: 'Stop push notifications to one browser',
        description:
          "404 for an id that is not one of yours. Call it when the browser's subscription is removed.",
        params: IdParams,
        response: { 204: Type.Null({ description: 'Deleted' }), ...errors(404), ...authErrors },
      },
    },
    async (req, reply) => {
      await push.unsubscribe(currentUser(req).id, req.params.id)
      return reply.code(204).send(null)
    },
  )

  app.put(
    '/chat/conversations/:id/mute',
    {
      schema: {
        ...chatCommon,
        operationId: 'setConversationMute',
        summary: 'Mute a conversation for yourself',
        description:
          'No push notifications from it until `until` (omitted: until you unmute), except for messages that ' +
          'mention you by name (`@all` does not). Only for you: other members see nothing. Setting it again ' +
          'replaces the previous mute. 404 unless you are a member.',
        params: IdParams,
        body: MuteBody,
        response: { 200: Mute, ...errors(404), ...authErrors },
      },
    },
    async (req) => {
      const until = req.body.until === undefined ? undefined : new Date(req.body.until)
      return conversations.mute(currentUser(req).id, req.params.id, until)
    },
  )

  app.delete(
    '/chat/conversations/:id/mute',
    {
      schema: {
        ...chatCommon,
        operationId: 'deleteConversationMute',
        summary: 'Unmute a conversation',
        description: 'Idempotent. 404 unless you are a member.',
        params: IdParams,
        response: { 200: Mute, ...errors(404), ...authErrors },
      },
    },
    async (req) => conversations.unmute(currentUser(req).id, req.params.id),
  )
}
