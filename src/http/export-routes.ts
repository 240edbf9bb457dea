import { Readable } from 'node:stream'
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { AttachmentSchema } from '../protocol/message.js'
import { EXPORT_FORMAT, EXPORT_MAX_PER_WINDOW, EXPORT_WINDOW_SEC } from '../services/export.js'
import type { Services } from '../services/index.js'
import { authenticate, currentUser } from './authenticate.js'
import { sendQuota } from './problem.js'
import { authErrors, PrivateUser, RATE_LIMIT_HEADERS, rateLimited, Uuid } from './schemas.js'

const Timestamp = Type.String({ format: 'date-time' })
const Nullable = <T extends Parameters<typeof Type.Union>[0][number]>(t: T) => Type.Union([t, Type.Null()])

const UserExport = Type.Object(
  {
    format: Type.Literal(EXPORT_FORMAT),
    exported_at: Timestamp,
    account: PrivateUser,
    memberships: Type.Array(
      Type.Object({
        conversation_id: Uuid,
        kind: Type.Union([Type.Literal('direct'), Type.Literal('group')]),
        title: Nullable(Type.String()),
        role: Type.String(),
        joined_at: Timestamp,
        last_read_seq: Type.Integer({ minimum: 0 }),
      }),
      { description: 'The conversations you are a member of now' },
    ),
    blocks: Type.Array(Type.Object({ user_id: Uuid, blocked_at: Timestamp }), {
      description: 'The users you block',
    }),
    messages: Type.Array(
      Type.Object({
        id: Uuid,
        conversation_id: Uuid,
        seq: Type.Integer({ minimum: 1 }),
        content: Type.String({ description: 'Empty for a deleted message (its tombstone)' }),
        client_msg_id: Nullable(Type.String()),
        created_at: Timestamp,
        edited_at: Nullable(Timestamp),
        deleted_at: Nullable(Timestamp),
        reply_to_id: Nullable(Uuid),
        attachments: Type.Array(Type.Omit(AttachmentSchema, ['thumbnail_url'])),
      }),
      { description: 'Every message you sent, in any conversation, oldest first' },
    ),
  },
  { $id: 'UserExport', description: 'Your data, as GET /users/me/export streams it' },
)

/** The user's data export (issue 15, docs/moderation.md). */
export const exportRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  app.addHook('onRequest', authenticate(services.auth))

  app.get(
    '/users/me/export',
    {
      schema: {
        tags: ['users'],
        security: [{ bearer: [] }],
        operationId: 'exportMe',
        summary: 'Download your data',
        description:
          'One JSON document: your account, your memberships, the users you block and every message you ' +
          'sent (deleted ones as tombstones), with attachments listed by metadata and URL (not their bytes). ' +
          `Streamed as it is read, so it starts at once whatever its size. At most ${EXPORT_MAX_PER_WINDOW} ` +
          `per ${EXPORT_WINDOW_SEC / 3600} hour per user (429 with Retry-After). Should the database fail ` +
          'midway, the connection is cut and the document is incomplete (not valid JSON): retry.',
        response: {
          200: {
            description: 'Your data (streamed)',
            headers: RATE_LIMIT_HEADERS,
            content: { 'application/json': { schema: UserExport } },
          },
          ...rateLimited(),
          ...authErrors,
        },
      },
    },
    async (req, reply) => {
      const user = currentUser(req)
      const { quota, chunks } = await services.exports.start(user)
      if (quota) sendQuota(reply, quota)
      const body = Readable.from(chunks, { objectMode: false })
      body.on('error', (err) => req.log.warn({ err }, 'export failed midway; connection cut'))
      reply.header('content-disposition', 'attachment; filename="chat-export.json"')
      return reply.type('application/json; charset=utf-8').send(body as never) // a stream: sent as it is read
    },
  )
}
