import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from '../services/messages.js'
import { authenticate, currentUser } from './authenticate.js'
import {
  authErrors,
  Conversation,
  IdParams,
  Member,
  Mentions,
  Message,
  Page,
  Problem,
  Uuid,
} from './schemas.js'

const MAX_SEQ = Number.MAX_SAFE_INTEGER
const Seq = Type.Integer({ minimum: 0, maximum: MAX_SEQ })
const ClientMsgId = Type.String({ minLength: 1, maxLength: 128 })
const notMember = { 404: Problem, ...authErrors }

export const chatRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { conversations, messages, auth, config } = services
  app.addHook('onRequest', authenticate(auth))
  const common = { tags: ['chat'], security: [{ bearer: [] }] }

  app.post(
    '/conversations',
    {
      schema: {
        ...common,
        summary: 'Create or get the direct conversation with a user (201 created, 200 existed)',
        body: Type.Object({ recipient_id: Uuid }),
        response: { 200: Conversation, 201: Conversation, ...notMember },
      },
    },
    async (req, reply) => {
      const { conversation, created } = await conversations.openDirect(
        currentUser(req).id,
        req.body.recipient_id,
      )
      return reply.code(created ? 201 : 200).send(conversation)
    },
  )

  app.post(
    '/groups',
    {
      schema: {
        ...common,
        summary: 'Create a group owned by the caller',
        body: Type.Object({
          title: Type.String({ minLength: 1, maxLength: 200 }),
          member_ids: Type.Array(Uuid, { maxItems: config.groupMaxMembers, default: [] }),
        }),
        response: { 201: Conversation, ...notMember },
      },
    },
    async (req, reply) => {
      const conv = await conversations.createGroup(currentUser(req).id, req.body.title, req.body.member_ids)
      return reply.code(201).send(conv)
    },
  )

  app.get(
    '/conversations',
    {
      schema: {
        ...common,
        summary: "The caller's conversations, most recent activity first",
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 20 }),
          cursor: Type.Optional(Type.String({ maxLength: 512 })),
        }),
        response: { 200: Page(Conversation), ...authErrors },
      },
    },
    async (req) => conversations.list(currentUser(req).id, req.query.limit, req.query.cursor),
  )

  app.get(
    '/conversations/:id',
    {
      schema: {
        ...common,
        summary: 'One conversation',
        params: IdParams,
        response: { 200: Conversation, ...notMember },
      },
    },
    async (req) => conversations.get(currentUser(req).id, req.params.id),
  )

  app.patch(
    '/conversations/:id',
    {
      schema: {
        ...common,
        summary: 'Rename a group (admins)',
        params: IdParams,
        body: Type.Object({ title: Type.String({ minLength: 1, maxLength: 200 }) }),
        response: { 200: Conversation, 403: Problem, ...notMember },
      },
    },
    async (req) => conversations.rename(currentUser(req).id, req.params.id, req.body.title),
  )

  app.post(
    '/conversations/:id/members',
    {
      schema: {
        ...common,
        summary: 'Add a member to a group (admins); 201 added, 200 already a member',
        params: IdParams,
        body: Type.Object({ user_id: Uuid }),
        response: { 200: Member, 201: Member, 403: Problem, ...notMember },
      },
    },
    async (req, reply) => {
      const { member, added } = await conversations.addMember(
        currentUser(req).id,
        req.params.id,
        req.body.user_id,
      )
      return reply.code(added ? 201 : 200).send(member)
    },
  )

  app.delete(
    '/conversations/:id/members/:user_id',
    {
      schema: {
        ...common,
        summary: 'Remove a member (admins), or leave (yourself); an owner who leaves hands ownership on',
        params: Type.Object({ id: Uuid, user_id: Uuid }),
        response: { 204: Type.Null(), 403: Problem, ...notMember },
      },
    },
    async (req, reply) => {
      await conversations.removeMember(currentUser(req).id, req.params.id, req.params.user_id)
      return reply.code(204).send(null)
    },
  )

  app.patch(
    '/conversations/:id/members/:user_id',
    {
      schema: {
        ...common,
        summary: "Make a member an admin or an admin a member (the group's owner)",
        params: Type.Object({ id: Uuid, user_id: Uuid }),
        body: Type.Object(
          { role: Type.Union([Type.Literal('admin'), Type.Literal('member')]) },
          { additionalProperties: false },
        ),
        response: { 200: Member, 403: Problem, ...notMember },
      },
    },
    async (req) =>
      conversations.setRole(currentUser(req).id, req.params.id, req.params.user_id, req.body.role),
  )

  app.get(
    '/conversations/:id/messages',
    {
      schema: {
        ...common,
        summary: 'Message history',
        description:
          'Items are always in ascending seq (oldest first). With after_seq, pages go forward (newer); ' +
          'with before_seq or no bound, they start at the newest and go backward (older). `cursor` continues ' +
          'in the same direction. skip/limit (offset paging) counts from the oldest message.',
        params: IdParams,
        querystring: Type.Object({
          before_seq: Type.Optional(Seq),
          after_seq: Type.Optional(Seq),
          skip: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000 })),
          limit: Type.Integer({ minimum: 1, maximum: HISTORY_MAX_LIMIT, default: HISTORY_DEFAULT_LIMIT }),
          cursor: Type.Optional(Type.String({ maxLength: 512 })),
        }),
        response: {
          200: Type.Object({
            items: Type.Array(Message),
            next_cursor: Type.Union([Type.String(), Type.Null()]),
            next_before_seq: Type.Union([Type.Integer(), Type.Null()]),
            next_after_seq: Type.Union([Type.Integer(), Type.Null()]),
          }),
          ...notMember,
        },
      },
    },
    async (req) => messages.history(currentUser(req).id, req.params.id, req.query),
  )

  app.post(
    '/conversations/:id/messages',
    {
      schema: {
        ...common,
        summary: 'Send a message (201); the same client_msg_id again returns the first one (200)',
        params: IdParams,
        body: Type.Object({
          content: Type.String({ maxLength: 65536 }),
          client_msg_id: Type.Optional(ClientMsgId),
          reply_to: Type.Optional(
            Type.Union([Uuid, Type.Null()], { description: 'a message of this conversation' }),
          ),
          mentions: Type.Optional(Mentions),
        }),
        response: { 200: Message, 201: Message, ...notMember },
      },
    },
    async (req, reply) => {
      const { message, created } = await messages.send(
        currentUser(req).id,
        req.params.id,
        req.body.content,
        req.body.client_msg_id ?? null,
        { reply_to: req.body.reply_to, mentions: req.body.mentions },
      )
      return reply.code(created ? 201 : 200).send(message)
    },
  )

  app.patch(
    '/messages/:id',
    {
      schema: {
        ...common,
        summary: 'Edit your message',
        params: IdParams,
        body: Type.Object({ content: Type.String({ maxLength: 65536 }) }),
        response: { 200: Message, 403: Problem, 409: Problem, ...notMember },
      },
    },
    async (req) => messages.edit(currentUser(req).id, req.params.id, req.body.content),
  )

  app.delete(
    '/messages/:id',
    {
      schema: {
        ...common,
        summary: 'Delete a message (sender or group admin); leaves a tombstone with its seq',
        params: IdParams,
        response: { 200: Message, 403: Problem, ...notMember },
      },
    },
    async (req) => messages.delete(currentUser(req).id, req.params.id),
  )

  app.post(
    '/conversations/:id/read',
    {
      schema: {
        ...common,
        summary: 'Move your read marker forward (never back)',
        params: IdParams,
        body: Type.Object({ seq: Seq }),
        response: { 200: Type.Object({ last_read_seq: Type.Integer() }), ...notMember },
      },
    },
    async (req) => messages.markRead(currentUser(req).id, req.params.id, req.body.seq),
  )
}
