import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { authenticate, currentUser } from './authenticate.js'
import { authErrors, errors, Page, Uuid } from './schemas.js'

const Block = Type.Object(
  {
    user_id: Uuid,
    full_name: Type.String(),
    blocked_at: Type.String({ format: 'date-time' }),
  },
  { $id: 'Block', description: 'A user you block' },
)
const BlockPage = Page(Block, 'BlockPage')
const BlockParams = Type.Object({ user_id: Uuid })
const Done = Type.Null({ description: 'Done (also when nothing changed)' })

/** Blocking other users (issue 15, docs/moderation.md). */
export const blockRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { blocks } = services
  app.addHook('onRequest', authenticate(services.auth))
  const common = { tags: ['users'], security: [{ bearer: [] }] }

  app.get(
    '/users/me/blocks',
    {
      schema: {
        ...common,
        operationId: 'listBlocks',
        summary: 'The users you block',
        description:
          'Newest block first. Keyset pages: pass `next_cursor` back as `cursor`. Clients use it to ' +
          "collapse blocked users' messages in groups, where they still flow (docs/moderation.md).",
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 50, format: 'int32' }),
          cursor: Type.Optional(Type.String({ maxLength: 512 })),
        }),
        response: { 200: BlockPage, ...authErrors },
      },
    },
    async (req) => blocks.list(currentUser(req).id, req.query.limit, req.query.cursor),
  )

  app.put(
    '/users/me/blocks/:user_id',
    {
      schema: {
        ...common,
        operationId: 'blockUser',
        summary: 'Block a user (idempotent)',
        description:
          'From then on, on every instance at once: your direct conversation with them (if any) stays ' +
          'readable but takes no new message from either of you, neither can start one (403 ' +
          '`/problems/blocked`), they cannot add you to a group, and their sockets no longer get your ' +
          'presence or typing. 404 for an unknown or deleted user, 422 for yourself.',
        params: BlockParams,
        response: { 204: Done, ...errors(404), ...authErrors },
      },
    },
    async (req, reply) => {
      await blocks.block(currentUser(req).id, req.params.user_id)
      return reply.code(204).send(null)
    },
  )

  app.delete(
    '/users/me/blocks/:user_id',
    {
      schema: {
        ...common,
        operationId: 'unblockUser',
        summary: 'Unblock a user (idempotent)',
        description:
          'Lifts your block; your direct conversation reopens unless they block you too. 204 also when ' +
          'you did not block them.',
        params: BlockParams,
        response: { 204: Done, ...authErrors },
      },
    },
    async (req, reply) => {
      await blocks.unblock(currentUser(req).id, req.params.user_id)
      return reply.code(204).send(null)
    },
  )
}
