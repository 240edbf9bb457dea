import Type, { type TSchema } from 'typebox'
import { messageProperties } from '../protocol/message.js'

/** Shared TypeBox schemas: one source for validation, serialization, types and the OpenAPI document. */
export const Uuid = Type.String({ format: 'uuid' })
export const IdParams = Type.Object({ id: Uuid })

export const Problem = Type.Object(
  {
    type: Type.String(),
    title: Type.String(),
    status: Type.Integer(),
    detail: Type.Optional(Type.String()),
    instance: Type.Optional(Type.String()),
    errors: Type.Optional(Type.Array(Type.Object({ path: Type.String(), message: Type.String() }))),
  },
  { $id: 'Problem', description: 'RFC 9457 problem details (application/problem+json)' },
)

export const PublicUser = Type.Object(
  { id: Uuid, full_name: Type.String(), created_at: Type.String({ format: 'date-time' }) },
  { $id: 'PublicUser' },
)

export const PrivateUser = Type.Object(
  {
    id: Uuid,
    full_name: Type.String(),
    created_at: Type.String({ format: 'date-time' }),
    email: Type.String(),
    is_active: Type.Boolean(),
    is_superuser: Type.Boolean(),
    updated_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'PrivateUser' },
)

export const TokenPair = Type.Object({
  access_token: Type.String(),
  token_type: Type.Literal('bearer'),
  refresh_token: Type.String(),
  expires_in: Type.Integer({ description: 'access token lifetime in seconds' }),
})

export const Message = Type.Object(messageProperties, { $id: 'Message' })

/** `mentions` of a send: member ids, or `@all` (group admins and owners) for every member. */
export const Mentions = Type.Array(Type.Union([Uuid, Type.Literal('@all')]), {
  maxItems: 50,
  description: 'Members mentioned (each must be a member), or "@all" (group admins and owners only).',
})

export const Member = Type.Object({
  user_id: Uuid,
  full_name: Type.String(),
  role: Type.Union([Type.Literal('owner'), Type.Literal('admin'), Type.Literal('member')]),
  last_read_seq: Type.Integer(),
})

export const Conversation = Type.Object(
  {
    id: Uuid,
    kind: Type.Union([Type.Literal('direct'), Type.Literal('group')]),
    title: Type.Union([Type.String(), Type.Null()]),
    created_by: Type.Union([Uuid, Type.Null()]),
    last_seq: Type.Integer(),
    last_activity_at: Type.String({ format: 'date-time' }),
    created_at: Type.String({ format: 'date-time' }),
    members: Type.Array(Member),
    last_message: Type.Union([Message, Type.Null()]),
    unread_count: Type.Integer(),
    unread_mentions: Type.Integer({ description: 'messages mentioning you after your read marker' }),
  },
  { $id: 'Conversation' },
)

export const Page = <T extends TSchema>(item: T) =>
  Type.Object({ items: Type.Array(item), next_cursor: Type.Union([Type.String(), Type.Null()]) })

/** Error responses every authenticated route may give. */
export const authErrors = { 401: Problem, 422: Problem, 429: Problem, 503: Problem }
