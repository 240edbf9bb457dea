import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { toPrivateUser, toPublicUser } from '../services/users.js'
import { authenticate, currentUser } from './authenticate.js'
import { authErrors, IdParams, Page, PrivateUser, Problem, PublicUser } from './schemas.js'

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

export const userRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { users, auth } = services
  app.addHook('onRequest', authenticate(auth))
  const common = { tags: ['users'], security: [{ bearer: [] }] }

  app.get(
    '/users',
    {
      schema: {
        ...common,
        summary: 'Find people by name prefix, or by email prefix when the query contains "@"',
        querystring: Type.Object({
          query: Type.String({ default: '', maxLength: 100 }),
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
          cursor: Type.Optional(Type.String({ maxLength: 512 })),
        }),
        response: { 200: Page(PublicUser), ...authErrors },
      },
    },
    async (req) => users.search(req.query.query, req.query.limit, req.query.cursor),
  )

  app.get(
    '/users/:id',
    {
      schema: {
        ...common,
        summary: 'A public profile',
        params: IdParams,
        response: { 200: PublicUser, 404: Problem, ...authErrors },
      },
    },
    async (req) => toPublicUser(await users.get(req.params.id)),
  )

  app.patch(
    '/users/me',
    {
      schema: {
        ...common,
        summary: 'Change your name, email or password (email and password need current_password)',
        body: UserPatch,
        response: { 200: PrivateUser, 409: Problem, ...authErrors },
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
        summary: 'Delete your account (requires the password)',
        body: DeleteBody,
        response: { 204: Type.Null(), ...authErrors },
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
        summary: 'Superusers only: change another user',
        params: IdParams,
        body: UserPatch,
        response: { 200: PrivateUser, 403: Problem, 404: Problem, 409: Problem, ...authErrors },
      },
    },
    async (req) => toPrivateUser(await users.update(currentUser(req), req.params.id, req.body)),
  )

  app.delete(
    '/users/:id',
    {
      schema: {
        ...common,
        summary: 'Superusers only: delete another user',
        params: IdParams,
        response: { 204: Type.Null(), 403: Problem, 404: Problem, ...authErrors },
      },
    },
    async (req, reply) => {
      await users.delete(currentUser(req), req.params.id, undefined)
      return reply.code(204).send(null)
    },
  )
}
