import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { toAdminUser } from '../services/moderation.js'
import { authenticate, currentUser, requireOperator } from './authenticate.js'
import {
  AdminUser,
  AdminUserPage,
  AuditPage,
  Cursor,
  Limit,
  Report,
  ReportPage,
  ReportReason,
  ReportResolution,
} from './moderation-schemas.js'
import { authErrors, errors, IdParams, Message, Uuid } from './schemas.js'

/**
 * /api/v1/admin: operators only. Anyone else signed in gets 403 on every route, before any input
 * is looked at (docs/moderation.md).
 */
export const adminRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { reports, moderation, auth } = services
  app.addHook('onRequest', authenticate(auth))
  app.addHook('preValidation', requireOperator)
  // The `operator` scope sets these apart from the routes any signed-in user may call (OWASP API5).
  const common = { tags: ['admin'], security: [{ bearer: ['operator'] }] }
  const refused = { ...errors(403), ...authErrors }

  app.get(
    '/reports',
    {
      schema: {
        ...common,
        operationId: 'adminListReports',
        summary: 'Reports, newest first',
        description: 'Filtered by status, reason and conversation; keyset pages.',
        querystring: Type.Object({
          status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('resolved')])),
          reason: Type.Optional(ReportReason),
          conversation_id: Type.Optional(Uuid),
          limit: Limit,
          cursor: Cursor,
        }),
        response: { 200: ReportPage, ...refused },
      },
    },
    async (req) => reports.list(req.query),
  )

  app.post(
    '/reports/:id/resolve',
    {
      schema: {
        ...common,
        operationId: 'adminResolveReport',
        summary: 'Resolve a report',
        description:
          '`dismiss`, `delete_message` (as a delete by its sender: tombstone and events) or `suspend_user` ' +
          '(its sender). The action, the resolution and their audit entries commit together. 409 when ' +
          'the report is resolved already; 404 for an unknown report.',
        params: IdParams,
        body: Type.Object({ action: ReportResolution }, { additionalProperties: false }),
        response: { 200: Report, ...errors(404, 409), ...refused },
      },
    },
    async (req) => reports.resolve(currentUser(req), req.params.id, req.body.action),
  )

  app.get(
    '/users',
    {
      schema: {
        ...common,
        operationId: 'adminListUsers',
        summary: 'Accounts',
        description:
          'Accounts not deleted, by id; `query` matches anywhere in the name or email, `suspended` filters. Keyset pages.',
        querystring: Type.Object({
          query: Type.Optional(Type.String({ maxLength: 254 })),
          suspended: Type.Optional(Type.Boolean()),
          limit: Limit,
          cursor: Cursor,
        }),
        response: { 200: AdminUserPage, ...refused },
      },
    },
    async (req) => moderation.listUsers(req.query),
  )

  app.put(
    '/users/:id/suspension',
    {
      schema: {
        ...common,
        operationId: 'adminSuspendUser',
        summary: 'Suspend an account',
        description:
          'Its sessions end, its sockets close (4403) on every instance at once, and its tokens stop ' +
          'working: until unsuspended it cannot sign in, refresh or open a socket (401 ' +
          '`account_suspended`). Idempotent. 422 for yourself, 404 for an unknown or deleted account.',
        params: IdParams,
        response: { 200: AdminUser, ...errors(404), ...refused },
      },
    },
    async (req) => toAdminUser(await moderation.suspend(currentUser(req), req.params.id)),
  )

  app.delete(
    '/users/:id/suspension',
    {
      schema: {
        ...common,
        operationId: 'adminUnsuspendUser',
        summary: 'Lift a suspension',
        description:
          'The account can sign in again; sessions ended by the suspension stay ended. Idempotent.',
        params: IdParams,
        response: { 200: AdminUser, ...errors(404), ...refused },
      },
    },
    async (req) => toAdminUser(await moderation.unsuspend(currentUser(req), req.params.id)),
  )

  app.delete(
    '/messages/:id',
    {
      schema: {
        ...common,
        operationId: 'adminDeleteMessage',
        summary: 'Delete any message',
        description:
          'As a delete by its sender: a tombstone (seq kept), `message.deleted` to the members, pin and ' +
          'search entry gone. Idempotent (the tombstone again). 404 for an unknown message.',
        params: IdParams,
        response: { 200: Message, ...errors(404), ...refused },
      },
    },
    async (req) => moderation.deleteMessage(currentUser(req), req.params.id),
  )

  app.get(
    '/audit-log',
    {
      schema: {
        ...common,
        operationId: 'adminListAuditLog',
        summary: 'The audit log, newest first',
        description:
          'Every moderation action (append-only). Filtered by action, actor and target; keyset pages.',
        querystring: Type.Object({
          action: Type.Optional(Type.String({ maxLength: 64 })),
          actor_id: Type.Optional(Uuid),
          target_id: Type.Optional(Uuid),
          limit: Limit,
          cursor: Cursor,
        }),
        response: { 200: AuditPage, ...refused },
      },
    },
    async (req) => moderation.auditLog(req.query),
  )
}
