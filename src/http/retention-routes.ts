import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { RETENTION_DAYS_MAX, RETENTION_DAYS_MIN } from '../services/retention.js'
import { authenticate, currentUser } from './authenticate.js'
import { authErrors, Conversation, errors, IdParams } from './schemas.js'

/** Retention (issue 15): a conversation's own setting; the job itself has no route. */
export const retentionRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (
  app,
  { services },
) => {
  const { retention, conversations } = services
  app.addHook('onRequest', authenticate(services.auth))

  app.put(
    '/conversations/:id/retention',
    {
      schema: {
        tags: ['chat'],
        security: [{ bearer: [] }],
        operationId: 'setConversationRetention',
        summary: "Set a conversation's message retention",
        description:
          `Messages older than \`days\` (${RETENTION_DAYS_MIN}–${RETENTION_DAYS_MAX}) are expired by the retention job: ` +
          'they become tombstones as deleted messages do (content, attachments, reactions, mentions, pin and thread ' +
          'summary removed; seq, sender and timestamps kept). `null` returns to the server default ' +
          '(MESSAGE_RETENTION_DAYS; kept forever when it is unset). Group owners and admins, or either member of a ' +
          'direct conversation (403 for other members); 404 unless you are a member. Answers the conversation ' +
          'with its effective `retention`; the job applies it at its next run.',
        params: IdParams,
        body: Type.Object(
          {
            days: Type.Union([
              Type.Integer({ minimum: RETENTION_DAYS_MIN, maximum: RETENTION_DAYS_MAX, format: 'int32' }),
              Type.Null(),
            ]),
          },
          { additionalProperties: false },
        ),
        response: { 200: Conversation, ...errors(403, 404), ...authErrors },
      },
    },
    async (req) => {
      const me = currentUser(req).id
      await retention.set(me, req.params.id, req.body.days)
      return conversations.get(me, req.params.id)
    },
  )
}
