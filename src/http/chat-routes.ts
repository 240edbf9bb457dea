import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import type { Services } from '../services/index.js'
import { HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT } from '../services/messages.js'
import { authenticate, currentUser } from './authenticate.js'
import {
  authErrors,
  Conversation,
  errors,
  IdParams,
  Member,
  Mentions,
  Message,
  Page,
  Uuid,
} from './schemas.js'

const MAX_SEQ = Number.MAX_SAFE_INTEGER
const Seq = Type.Integer({ minimum: 0, maximum: MAX_SEQ, format: 'int64' })
const ClientMsgId = Type.String({
  minLength: 1,
  maxLength: 128,
  description: 'Your id for this send: the same id again returns the first message instead of a second one',
})
/** Member-only objects: a non-member gets 404 and learns nothing. */
const notMember = { ...errors(404), ...authErrors }
const MemberParams = Type.Object({ id: Uuid, user_id: Uuid })
const ConversationPage = Page(Conversation, 'ConversationPage')
const MessageHistory = Type.Object(
  {
    items: Type.Array(Message, { description: 'Ascending seq (oldest first)' }),
    next_cursor: Type.Union([Type.String(), Type.Null()], {
      description: 'Pass as `cursor` for the next page in the same direction; null at the end',
    }),
    next_before_seq: Type.Union([Type.Integer(), Type.Null()]),
    next_after_seq: Type.Union([Type.Integer(), Type.Null()]),
  },
  { $id: 'MessageHistory' },
)
const ReadMarker = Type.Object({ last_read_seq: Type.Integer() }, { $id: 'ReadMarker' })
const Title = Type.String({ minLength: 1, maxLength: 200 })
const AttachmentIds = Type.Array(Uuid, {
  maxItems: 10,
  uniqueItems: true,
  description: 'attachments from createAttachment, uploaded; with them, content may be empty',
})

export const chatRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { conversations, messages, auth, config } = services
  app.addHook('onRequest', authenticate(auth))
  const common = { tags: ['chat'], security: [{ bearer: [] }] }
  const Content = Type.String({
    maxLength: 65536,
    description: `The text: at most ${config.messageMaxChars} characters (MESSAGE_MAX_CHARS) once trimmed; not blank unless attachment_ids are given`,
  })

  app.post(
    '/conversations',
    {
      schema: {
        ...common,
        operationId: 'openDirectConversation',
        summary: 'Create or get the direct conversation with a user',
        description:
          'There is one direct conversation per pair of users: 201 when this call created it, 200 when ' +
          'it existed (also under concurrent calls). 404 when the recipient does not exist. 403 ' +
          '`/problems/blocked` when none exists yet and either user blocks the other; an existing one ' +
          'is returned (readable, `blocked: true`, closed to new messages).',
        body: Type.Object({ recipient_id: Uuid }),
        response: {
          200: { description: 'It existed', content: { 'application/json': { schema: Conversation } } },
          201: { description: 'Created', content: { 'application/json': { schema: Conversation } } },
          ...errors(403),
          ...notMember,
        },
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
        operationId: 'createGroup',
        summary: 'Create a group owned by the caller',
        description: `The caller is its owner; \`member_ids\` (optional) are added as members. At most ${config.groupMaxMembers} members (GROUP_MAX_MEMBERS); 404 when a member does not exist; 403 \`/problems/blocked\` when a member blocks the caller.`,
        body: Type.Object({
          title: Title,
          member_ids: Type.Array(Uuid, { maxItems: config.groupMaxMembers, default: [] }),
        }),
        response: { 201: Conversation, ...errors(403), ...notMember },
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
        operationId: 'listConversations',
        summary: "The caller's conversations",
        description:
          'Most recent activity first, each with its members, last message and unread count. Keyset ' +
          'pages: pass `next_cursor` back as `cursor`.',
        querystring: Type.Object({
          limit: Type.Integer({ minimum: 1, maximum: 100, default: 20, format: 'int32' }),
          cursor: Type.Optional(Type.String({ maxLength: 512 })),
        }),
        response: { 200: ConversationPage, ...authErrors },
      },
    },
    async (req) => conversations.list(currentUser(req).id, req.query.limit, req.query.cursor),
  )

  app.get(
    '/conversations/:id',
    {
      schema: {
        ...common,
        operationId: 'getConversation',
        summary: 'One conversation',
        description: 'With its members, last message and your unread count; 404 unless you are a member.',
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
        operationId: 'renameGroup',
        summary: 'Rename a group',
        description:
          'Group owners and admins only (403 for other members); a direct conversation has no title (422).',
        params: IdParams,
        body: Type.Object({ title: Title }),
        response: { 200: Conversation, ...errors(403), ...notMember },
      },
    },
    async (req) => conversations.rename(currentUser(req).id, req.params.id, req.body.title),
  )

  app.post(
    '/conversations/:id/members',
    {
      schema: {
        ...common,
        operationId: 'addMember',
        summary: 'Add a member to a group',
        description:
          'Group owners and admins only (403 otherwise). 201 when added, 200 when already a member; ' +
          '422 for a full group (GROUP_MAX_MEMBERS) or a direct conversation, 404 for an unknown user, ' +
          '403 `/problems/blocked` when that user blocks the caller, ' +
          '409 `banned` for a user the group banned (until unbanned).',
        params: IdParams,
        body: Type.Object({ user_id: Uuid }),
        response: {
          200: { description: 'Already a member', content: { 'application/json': { schema: Member } } },
          201: { description: 'Added', content: { 'application/json': { schema: Member } } },
          ...errors(403, 409),
          ...notMember,
        },
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
        operationId: 'removeMember',
        summary: 'Remove a member, or leave',
        description:
          'Admins remove members; anyone may remove themselves (leave). An owner who leaves hands ' +
          'ownership on. A removed member sees nothing of the conversation afterwards.',
        params: MemberParams,
        response: { 204: Type.Null({ description: 'Removed' }), ...errors(403), ...notMember },
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
        operationId: 'setMemberRole',
        summary: "Change a member's role",
        description: "The group's owner makes a member an admin or an admin a member (403 for anyone else).",
        params: MemberParams,
        body: Type.Object(
          { role: Type.Union([Type.Literal('admin'), Type.Literal('member')]) },
          { additionalProperties: false },
        ),
        response: { 200: Member, ...errors(403), ...notMember },
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
        operationId: 'listMessages',
        summary: 'Message history',
        description:
          'Items are always in ascending seq (oldest first). With after_seq, pages go forward (newer); ' +
          'with before_seq or no bound, they start at the newest and go backward (older). `cursor` continues ' +
          'in the same direction. skip/limit (offset paging) counts from the oldest message.',
        params: IdParams,
        querystring: Type.Object({
          before_seq: Type.Optional(Seq),
          after_seq: Type.Optional(Seq),
          skip: Type.Optional(Type.Integer({ minimum: 0, maximum: 10_000_000, format: 'int32' })),
          limit: Type.Integer({
            minimum: 1,
            maximum: HISTORY_MAX_LIMIT,
            default: HISTORY_DEFAULT_LIMIT,
            format: 'int32',
          }),
          cursor: Type.Optional(Type.String({ maxLength: 512 })),
        }),
        response: { 200: MessageHistory, ...notMember },
      },
    },
    async (req) => messages.history(currentUser(req).id, req.params.id, req.query),
  )

  app.post(
    '/conversations/:id/messages',
    {
      schema: {
        ...common,
        operationId: 'sendMessage',
        summary: 'Send a message',
        description:
          "Stored with the next `seq` of the conversation and delivered to its members' sockets. 201 " +
          'when stored; 200 with the first message when `client_msg_id` was already used (a safe retry). ' +
          'Sends per user are limited (MESSAGE_RATE_PER_SEC, burst MESSAGE_RATE_BURST): 429 with Retry-After. ' +
          '403: `@all` in `mentions` from someone who is not a group admin or owner, or `/problems/blocked` in a ' +
          'direct conversation closed by a block (either way); 409: an attachment already used.',
        params: IdParams,
        body: Type.Object({
          content: Content,
          client_msg_id: Type.Optional(ClientMsgId),
          attachment_ids: Type.Optional(AttachmentIds),
          reply_to: Type.Optional(
            Type.Union([Uuid, Type.Null()], { description: 'a message of this conversation' }),
          ),
          mentions: Type.Optional(Mentions),
        }),
        response: {
          200: {
            description: 'Sent before with this client_msg_id',
            content: { 'application/json': { schema: Message } },
          },
          201: { description: 'Stored', content: { 'application/json': { schema: Message } } },
          ...errors(403, 409, 429),
          ...notMember,
        },
      },
    },
    async (req, reply) => {
      const { message, created } = await messages.send(
        currentUser(req).id,
        req.params.id,
        req.body.content,
        req.body.client_msg_id ?? null,
        {
          reply_to: req.body.reply_to,
          mentions: req.body.mentions,
          attachment_ids: req.body.attachment_ids,
        },
      )
      return reply.code(created ? 201 : 200).send(message)
    },
  )

  app.patch(
    '/messages/:id',
    {
      schema: {
        ...common,
        operationId: 'editMessage',
        summary: 'Edit your message',
        description: 'Only its sender may edit it (403); a deleted message cannot be edited (409).',
        params: IdParams,
        body: Type.Object({ content: Content }),
        response: { 200: Message, ...errors(403, 409), ...notMember },
      },
    },
    async (req) => messages.edit(currentUser(req).id, req.params.id, req.body.content),
  )

  app.delete(
    '/messages/:id',
    {
      schema: {
        ...common,
        operationId: 'deleteMessage',
        summary: 'Delete a message',
        description:
          'Its sender, or an admin of the group, may delete it (403 otherwise). It stays as a tombstone ' +
          '(`deleted_at` set, content emptied) so `seq` stays gapless; the tombstone is returned.',
        params: IdParams,
        response: { 200: Message, ...errors(403), ...notMember },
      },
    },
    async (req) => messages.delete(currentUser(req).id, req.params.id),
  )

  app.post(
    '/conversations/:id/read',
    {
      schema: {
        ...common,
        operationId: 'markRead',
        summary: 'Mark messages as read',
        description:
          'Moves your read marker to `seq` (capped at the last message); it never moves back, so the ' +
          'answer is the marker as it now stands.',
        params: IdParams,
        body: Type.Object({ seq: Seq }),
        response: { 200: ReadMarker, ...notMember },
      },
    },
    async (req) => messages.markRead(currentUser(req).id, req.params.id, req.body.seq),
  )
}
