import Type, { type TSchema } from 'typebox'
import { messageProperties } from '../protocol/message.js'

/**
 * Shared TypeBox schemas: one source for validation, serialization, types and the OpenAPI
 * document. A schema with an `$id` becomes `#/components/schemas/<$id>` in /openapi.json (see
 * `openApiOptions` in http/openapi.ts), so a client generator names its type after it: give every
 * response schema a readable, stable `$id`. docs/api.md has the conventions.
 */
export const Uuid = Type.String({ format: 'uuid', maxLength: 36 })
export const IdParams = Type.Object({ id: Uuid })
const Timestamp = Type.String({ format: 'date-time' })

export const Problem = Type.Object(
  {
    type: Type.String({ description: 'A relative URI naming the problem: `/problems/<code>`' }),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String({ description: 'The request path' })),
    errors: Type.Optional(
      Type.Array(
        Type.Object({
          path: Type.String({ description: 'JSON pointer into the request: `/body/email`' }),
          message: Type.String(),
        }),
        { description: 'One entry per invalid field (validation_failed)' },
      ),
    ),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (application/problem+json)' },
)

export const PublicUser = Type.Object(
  { id: Uuid, full_name: Type.String(), created_at: Timestamp },
  { $id: 'PublicUser', description: 'What any signed-in user may see of another' },
)

export const PrivateUser = Type.Object(
  {
    id: Uuid,
    full_name: Type.String(),
    created_at: Timestamp,
    email: Type.String(),
    is_active: Type.Boolean(),
    is_superuser: Type.Boolean({ description: 'true for operators (kept for older clients; read `role`)' }),
    role: Type.Union([Type.Literal('user'), Type.Literal('operator')], {
      description: 'operators use /api/v1/admin (docs/moderation.md)',
    }),
    updated_at: Timestamp,
  },
  { $id: 'PrivateUser', description: 'A user as they (or an operator) see themselves' },
)

const tokenProperties = {
  access_token: Type.String({ description: 'HS256 JWT for `Authorization: Bearer`' }),
  token_type: Type.Literal('bearer'),
  refresh_token: Type.String({ description: 'Single use: /auth/refresh spends it and returns a new one' }),
  expires_in: Type.Integer({ description: 'access token lifetime in seconds' }),
}
export const TokenPair = Type.Object(tokenProperties, { $id: 'TokenPair' })

export const Registration = Type.Object(
  { user: PrivateUser, ...tokenProperties },
  { $id: 'Registration', description: 'The new account and its first tokens' },
)

export const Message = Type.Object(messageProperties, { $id: 'Message' })

/** `mentions` of a send: member ids, or `@all` (group admins and owners) for every member. */
export const Mentions = Type.Array(Type.Union([Uuid, Type.Literal('@all')]), {
  maxItems: 50,
  description: 'Members mentioned (each must be a member), or "@all" (group admins and owners only).',
})

export const Member = Type.Object(
  {
    user_id: Uuid,
    full_name: Type.String(),
    role: Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('member')]),
    last_read_seq: Type.Integer(),
  },
  { $id: 'Member' },
)

export const Retention = Type.Object(
  {
    days: Type.Union([Type.Integer({ minimum: 1, maximum: 36500 }), Type.Null()], {
      description: 'Messages older than this many days are expired (tombstoned); null: kept forever',
    }),
    source: Type.Union([Type.Literal('conversation'), Type.Literal('server'), Type.Literal('none')], {
      description:
        "Where `days` comes from: the conversation's own setting, the server default (MESSAGE_RETENTION_DAYS), or none (kept forever)",
    }),
  },
  { $id: 'Retention', description: "The conversation's effective message retention" },
)

export const Conversation = Type.Object(
  {
    id: Uuid,
    kind: Type.Union([Type.Literal('direct'), Type.Literal('group')]),
    title: Type.Union([Type.String(), Type.Null()]),
    created_by: Type.Union([Uuid, Type.Null()]),
    last_seq: Type.Integer(),
    change_seq: Type.Integer({
      minimum: 0,
      description:
        "The conversation's change counter: grows by one with every change to one of its messages (edit, delete, reactions, thread, pin). A client that first sees the conversation here takes it as its change position for `sync`.",
    }),
    last_activity_at: Timestamp,
    created_at: Timestamp,
    members: Type.Array(Member),
    last_message: Type.Union([Message, Type.Null()]),
    unread_count: Type.Integer(),
    unread_mentions: Type.Integer({ description: 'messages mentioning you after your read marker' }),
    blocked: Type.Boolean({
      description:
        'A direct conversation one member blocks the other in: still readable, closed to new messages (403 `blocked`)',
    }),
    retention: Retention,
    ...muteProperties(),
  },
  { $id: 'Conversation' },
)

/** Your mute of a conversation (setConversationMute), also shown on every conversation. */
function muteProperties() {
  return {
    muted: Type.Boolean({ description: 'You muted it: no push notifications, except when mentioned' }),
    muted_until: Type.Union([Timestamp, Type.Null()], {
      description: 'When your mute ends; null when not muted, or muted until you unmute',
    }),
  }
}

export const Mute = Type.Object({ conversation_id: Uuid, ...muteProperties() }, { $id: 'Mute' })

/**
 * A keyset page of `item`. Name it (`Page(Pin, 'PinPage')`) so it is a component of its own; two
 * page types must not share a name.
 */
export const Page = <T extends TSchema>(item: T, $id?: string) =>
  Type.Object(
    {
      items: Type.Array(item),
      next_cursor: Type.Union([Type.String(), Type.Null()], {
        description: 'Pass as `cursor` for the next page; null on the last page',
      }),
    },
    $id === undefined ? {} : { $id },
  )

// ---- error responses ----

/** Statuses an operation may document as a problem (others are bugs: 500). */
export type ProblemStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 422 | 429 | 503

const PROBLEM_DESCRIPTIONS: Record<ProblemStatus, string> = {
  400: 'The body is not JSON (malformed, or not UTF-8)',
  401: 'No bearer token, or an invalid or expired one',
  403: 'Signed in, but not allowed to do this',
  404: 'No such object, or one the caller may not see (a non-member learns nothing)',
  409: 'Conflicts with the current state',
  413: 'The body is larger than BODY_LIMIT_BYTES',
  415: 'The body has a media type the operation does not accept',
  422: 'The input is invalid; `errors[]` names each field',
  429: 'Too many requests: wait Retry-After seconds',
  503: 'The database or Redis is unavailable: retry after Retry-After seconds',
}

const seconds = (description: string) => ({ type: 'integer', minimum: 0, description })

/** Response headers each problem status carries, as the OpenAPI document declares them. */
const PROBLEM_HEADERS: Partial<Record<ProblemStatus, Record<string, object>>> = {
  401: { 'WWW-Authenticate': { type: 'string', description: 'Always `Bearer`' } },
  429: { 'Retry-After': seconds('Seconds to wait before trying again') },
  503: { 'Retry-After': seconds('Seconds to wait before trying again') },
}

/**
 * The problem+json responses of an operation, to spread into its `response` map:
 *
 *     response: { 200: Conversation, ...errors(403, 404), ...authErrors }
 *
 * Each status gets a standard description, the `Problem` schema under `application/problem+json`
 * (what `http/problem.ts` sends), and its headers (`Retry-After` on 429 and 503). A route that
 * also sends rate-limit headers on its 429 adds them with `rateLimited()`.
 */
export function errors(...statuses: ProblemStatus[]) {
  const out: Record<number, ReturnType<typeof problemResponse>> = {}
  for (const status of statuses) out[status] = problemResponse(status)
  return out
}

function problemResponse(status: ProblemStatus, extraHeaders: Record<string, object> = {}) {
  const headers = { ...PROBLEM_HEADERS[status], ...extraHeaders }
  return {
    description: PROBLEM_DESCRIPTIONS[status],
    ...(Object.keys(headers).length > 0 ? { headers } : {}),
    content: { 'application/problem+json': { schema: Problem } },
  }
}

/**
 * The headers of an operation counted in a fixed window (`services/rate-limits.ts` `consume`):
 * sent on its success and on its 429, in the IETF draft's names.
 */
export const RATE_LIMIT_HEADERS = {
  'RateLimit-Limit': { type: 'integer', minimum: 1, description: 'Requests allowed in the window' },
  'RateLimit-Remaining': { type: 'integer', minimum: 0, description: 'Requests left in the window' },
  'RateLimit-Reset': seconds('Seconds until the window resets'),
}

/** A 429 that also carries the RateLimit-* headers (fixed-window limits). */
export const rateLimited = () => ({ 429: problemResponse(429, RATE_LIMIT_HEADERS) })

/** A success response (`schema` under application/json) that carries the RateLimit-* headers. */
export const withRateLimitHeaders = (schema: TSchema, description: string) => ({
  description,
  headers: RATE_LIMIT_HEADERS,
  content: { 'application/json': { schema } },
})

/** Error responses every authenticated route may give: bad or missing token, bad input, an outage. */
export const authErrors = errors(401, 422, 503)
