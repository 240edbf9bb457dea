import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { toPrivateUser, toPublicUser } from '../services/users.js'
import { authenticate, currentUser } from './authenticate.js'
import { authErrors, errors, IdParams, Page, PrivateUser, PublicUser } from './schemas.js'

const UserPatch = Type.Object(
  {
    full_name: Type.Optional(Type.String({ minLength: 1, maxLength: 100 })),
    email: Type.Optional(Type.String({ minLength: 3, maxLength: 254 })),
    password: Type.Optional(Type.String({ minLength: 1, maxLength: 1024 })),
    current_password: Type.Optional(Type.String({ maxLength: 1024 })),
  },
  { additionalProperties: false },
)
const DeleteBody = Type.Object({ password: Type.Optional(Type.String({ maxLength: 1024 })) })
const UserPage = Page(PublicUser, 'UserPage')
const Deleted = Type.Null({ description: 'Deleted' })

export const userRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { users, auth } = services
  app.addHook('onRequest', authenticate(auth))
  const common = { tags: ['users'], security: [{ bearer: [] }] }

  app.get(
    '/users',
    {
      schema: {
        ...common,
        operationId: 'searchUsers',
        summary: 'Find people by name or email prefix',
        description:
          'Matches the start of the name, or of the email when `query` contains "@" (case-insensitive). ' +
          'An empty query lists everyone. Keyset pages: pass `next_cursor` back as `cursor`.',
        querystring: Type.Object({
          query: Type.String({ default: '', maxLength: 100 }),
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 20, format: 'int32' }),
          cursor: Type.Optional(Type.String({ maxLength: 512 })),
        }),
        response: { 200: UserPage, ...authErrors },
      },
    },
    async (req) => users.search(req.query.query, req.query.limit, req.query.cursor),
  )

  app.get(
    '/users/:id',
    {
      schema: {
        ...common,
        operationId: 'getUser',
        summary: 'A public profile',
        description: "Any active user's public profile (no email); 404 for a deleted or unknown id.",
        params: IdParams,
        response: { 200: PublicUser, ...errors(404), ...authErrors },
      },
    },
    async (req) => toPublicUser(await users.get(req.params.id)),
  )

  app.patch(
    '/users/me',
    {
      schema: {
        ...common,
        operationId: 'updateMe',
        summary: 'Change your name, email or password',
        description:
          'Send only what changes. Changing the email or the password needs the correct ' +
          '`current_password` (422 otherwise); an email already taken is a 409.',
        body: UserPatch,
        response: { 200: PrivateUser, ...errors(409), ...authErrors },
      },
    },
    async (req) => {
      const me = currentUser(req)
      return toPrivateUser(await users.update(me, me.id, req.body))
    },
  )

  app.delete(
    '/users/me',
    {
      schema: {
        ...common,
        operationId: 'deleteMe',
        summary: 'Delete your account',
        description:
          'Needs the correct `password` (422 otherwise). The account can no longer sign in, its ' +
          'email is freed, its sessions and open sockets end; its messages stay.',
        body: DeleteBody,
        response: { 204: Deleted, ...authErrors },
      },
    },
    async (req, reply) => {
      const me = currentUser(req)
      await users.delete(me, me.id, req.body.password)
      return reply.code(204).send(null)
    },
  )

  app.patch(
    '/users/:id',
    {
      schema: {
        ...common,
        operationId: 'updateUser',
        summary: 'Change another user (operators)',
        description:
          'As PATCH /users/me, for another user, without `current_password`. 403 for everyone else.',
        params: IdParams,
        body: UserPatch,
        response: { 200: PrivateUser, ...errors(403, 404, 409), ...authErrors },
      },
    },
    async (req) => toPrivateUser(await users.update(currentUser(req), req.params.id, req.body)),
  )

  app.delete(
    '/users/:id',
    {
      schema: {
        ...common,
        operationId: 'deleteUser',
        summary: 'Delete another user (operators)',
        description: 'As DELETE /users/me, for any user, without a password. 403 for everyone else.',
        params: IdParams,
        response: { 204: Deleted, ...errors(403, 404), ...authErrors },
      },
    },
    async (req, reply) => {
      await users.delete(currentUser(req), req.params.id, undefined)
      return reply.code(204).send(null)
    },
  )
}
