import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { REPORT_NOTE_MAX } from '../services/reports.js'
import { authenticate, currentUser } from './authenticate.js'
import { BanPage, Cursor, Limit, Report, ReportReason } from './moderation-schemas.js'
import { authErrors, errors, IdParams, rateLimited, Uuid } from './schemas.js'

/** Members report messages; group owners and admins ban (docs/moderation.md). Mounted under /api/v1/chat. */
export const moderationRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (
  app,
  { services },
) => {
  const { reports, bans, auth } = services
  app.addHook('onRequest', authenticate(auth))
  const common = { tags: ['moderation'], security: [{ bearer: [] }] }
  const notMember = { ...errors(404), ...authErrors }
  const BanParams = Type.Object({ id: Uuid, user_id: Uuid })

  app.post(
    '/messages/:id/report',
    {
      schema: {
        ...common,
        operationId: 'reportMessage',
        summary: 'Report a message to the operators',
        description:
          'Members of its conversation only (404 for anyone else). The report keeps a snapshot of the ' +
          'message as it is now. One open report per reporter and message: reporting it again answers ' +
          '200 with the open report, unchanged. 422: your own message; 409: a deleted message. Limited per ' +
          'user (REPORT_MAX_PER_USER in REPORT_WINDOW_SEC): 429 with Retry-After.',
        params: IdParams,
        body: Type.Object(
          {
            reason: ReportReason,
            note: Type.Optional(
              Type.String({
                maxLength: REPORT_NOTE_MAX * 2,
                description: `At most ${REPORT_NOTE_MAX} characters`,
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: {
          200: {
            description: 'Already reported (open)',
            content: { 'application/json': { schema: Report } },
          },
          201: { description: 'Reported', content: { 'application/json': { schema: Report } } },
          ...errors(409),
          ...rateLimited(),
          ...notMember,
        },
      },
    },
    async (req, reply) => {
      const { report, created } = await reports.report(
        currentUser(req).id,
        req.params.id,
        req.body.reason,
        req.body.note,
      )
      return reply.code(created ? 201 : 200).send(report)
    },
  )

  app.post(
    '/conversations/:id/bans/:user_id',
    {
      schema: {
        ...common,
        operationId: 'banMember',
        summary: 'Ban a user from a group',
        description:
          'Group owners and admins (403 for others; the owner cannot be banned). A member is removed as ' +
          'by removeMember; nobody can add the user back (409 `banned`) until unbanned. Banning again ' +
          'changes nothing. A direct conversation has no bans (422).',
        params: BanParams,
        response: { 204: Type.Null({ description: 'Banned' }), ...errors(403), ...notMember },
      },
    },
    async (req, reply) => {
      await bans.ban(currentUser(req).id, req.params.id, req.params.user_id)
      return reply.code(204).send(null)
    },
  )

  app.delete(
    '/conversations/:id/bans/:user_id',
    {
      schema: {
        ...common,
        operationId: 'unbanMember',
        summary: 'Lift a ban',
        description:
          'Group owners and admins (403 for others); 404 when the user is not banned. The user is not ' +
          'added back: an admin may add them again.',
        params: BanParams,
        response: { 204: Type.Null({ description: 'Unbanned' }), ...errors(403), ...notMember },
      },
    },
    async (req, reply) => {
      await bans.unban(currentUser(req).id, req.params.id, req.params.user_id)
      return reply.code(204).send(null)
    },
  )

  app.get(
    '/conversations/:id/bans',
    {
      schema: {
        ...common,
        operationId: 'listBans',
        summary: "A group's bans",
        description: 'Group owners and admins (403 for other members). By user id; keyset pages.',
        params: IdParams,
        querystring: Type.Object({ limit: Limit, cursor: Cursor }),
        response: { 200: BanPage, ...errors(403), ...notMember },
      },
    },
    async (req) => bans.list(currentUser(req).id, req.params.id, req.query.limit, req.query.cursor),
  )
}
