import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox'
import Type from 'typebox'
import { ReactionSchema } from '../protocol/message.js'
import { EMOJI_MAX_LENGTH } from '../services/emoji.js'
import type { Services } from '../services/index.js'
import { PINS_MAX_PAGE } from '../services/pins.js'
import { SEARCH_MAX_LIMIT, SEARCH_MAX_QUERY } from '../services/search.js'
import { authenticate, currentUser } from './authenticate.js'
import { authErrors, IdParams, Message, Page, Problem, Uuid } from './schemas.js'

const notMember = { 404: Problem, ...authErrors }
const Limit = (max: number, dflt: number) =>
  Type.Integer({ minimum: 1, maximum: max, default: dflt, format: 'int32' })
const Cursor = Type.Optional(Type.String({ maxLength: 512 }))
const MessagePage = Page(Message)

const ReactionParams = Type.Object({
  id: Uuid,
  emoji: Type.String({
    minLength: 1,
    maxLength: EMOJI_MAX_LENGTH,
    description:
      'One emoji (a single grapheme of emoji code points, URL-encoded) or a short name matching ^:[a-z0-9_+-]{1,32}:$',
  }),
})
const ReactionSummary = Type.Object(
  { message_id: Uuid, rev: Type.Integer({ minimum: 0 }), reactions: Type.Array(ReactionSchema) },
  { $id: 'ReactionSummary' },
)
const SearchResults = Type.Object(
  {
    items: Type.Array(
      Type.Object({
        message: Message,
        snippet: Type.String({
          description: 'HTML-escaped text around the first match; matches in <mark>…</mark>',
        }),
      }),
    ),
    next_cursor: Type.Union([Type.String(), Type.Null()]),
  },
  { $id: 'SearchResults' },
)
const Pin = Type.Object({ pinned_at: Type.String({ format: 'date-time' }) }, { $id: 'Pin' })

/** Threads, reactions, mentions and pins (issue 14): member-only, like the messages they are about. */
export const richRoutes: FastifyPluginAsyncTypebox<{ services: Services }> = async (app, { services }) => {
  const { reactions, pins, threads, search } = services
  app.addHook('onRequest', authenticate(services.auth))
  const common = { tags: ['chat'], security: [{ bearer: [] }] }

  app.get(
    '/messages/:id/replies',
    {
      schema: {
        ...common,
        operationId: 'listReplies',
        summary: 'Replies to a message (its thread), oldest first',
        description: 'Keyset pages: pass `next_cursor` as `cursor` for the next (newer) replies.',
        params: IdParams,
        querystring: Type.Object({ limit: Type.Optional(Limit(100, 50)), cursor: Cursor }),
        response: { 200: MessagePage, ...notMember },
      },
    },
    async (req) =>
      threads.replies(currentUser(req).id, req.params.id, req.query.limit ?? 50, req.query.cursor),
  )

  app.put(
    '/messages/:id/reactions/:emoji',
    {
      schema: {
        ...common,
        operationId: 'addReaction',
        summary: 'React to a message (idempotent)',
        description:
          'At most 20 different reactions per message and 10 per user per message (422 beyond). Answers the ' +
          "message's whole reactions summary; members' sockets get `message.reactions`.",
        params: ReactionParams,
        response: { 200: ReactionSummary, 409: Problem, ...notMember },
      },
    },
    async (req) => reactions.add(currentUser(req).id, req.params.id, req.params.emoji),
  )

  app.delete(
    '/messages/:id/reactions/:emoji',
    {
      schema: {
        ...common,
        operationId: 'removeReaction',
        summary: 'Remove your reaction (idempotent)',
        description: "Answers the message's whole reactions summary.",
        params: ReactionParams,
        response: { 200: ReactionSummary, ...notMember },
      },
    },
    async (req) => reactions.remove(currentUser(req).id, req.params.id, req.params.emoji),
  )

  app.get(
    '/mentions',
    {
      schema: {
        ...common,
        operationId: 'listMentions',
        summary: 'Messages that mention you, newest first',
        description:
          'Across the conversations you are a member of now (a conversation you left shows nothing); deleted ' +
          'messages are left out. `@all` mentions count. Keyset pages via `cursor`.',
        querystring: Type.Object({ limit: Type.Optional(Limit(100, 50)), cursor: Cursor }),
        response: { 200: MessagePage, ...authErrors },
      },
    },
    async (req) => threads.mentions(currentUser(req).id, req.query.limit ?? 50, req.query.cursor),
  )

  app.get(
    '/search',
    {
      schema: {
        ...common,
        operationId: 'searchMessages',
        summary: 'Search messages in your conversations, newest first',
        description:
          'A message matches when every word of `q` starts one of its words (full-text search, `simple` ' +
          'configuration plus SEARCH_LANGUAGE), or when it contains `q` itself (3+ characters, any part of a ' +
          'word). Only conversations you are a member of now (a removed member finds nothing in them); deleted ' +
          'messages never match; edits are searched as edited. Newest first (by created_at, then id); keyset ' +
          'pages via `cursor`. `conversation_id` narrows to one conversation (404 when not a member).',
        querystring: Type.Object({
          q: Type.String({ minLength: 1, maxLength: SEARCH_MAX_QUERY }),
          conversation_id: Type.Optional(Uuid),
          cursor: Cursor,
          limit: Type.Optional(Limit(SEARCH_MAX_LIMIT, 20)),
        }),
        response: { 200: SearchResults, ...notMember },
      },
    },
    async (req) => search.search(currentUser(req).id, req.query),
  )

  app.put(
    '/messages/:id/pin',
    {
      schema: {
        ...common,
        operationId: 'pinMessage',
        summary: 'Pin a message (group admins and owner; either member of a direct conversation)',
        description: 'Idempotent. A deleted message cannot be pinned (409), and deleting one unpins it.',
        params: IdParams,
        response: { 200: Pin, 403: Problem, 409: Problem, ...notMember },
      },
    },
    async (req) => pins.pin(currentUser(req).id, req.params.id),
  )

  app.delete(
    '/messages/:id/pin',
    {
      schema: {
        ...common,
        operationId: 'unpinMessage',
        summary: 'Unpin a message (same roles as pinning)',
        description: 'Idempotent.',
        params: IdParams,
        response: { 204: Type.Null(), 403: Problem, ...notMember },
      },
    },
    async (req, reply) => {
      await pins.unpin(currentUser(req).id, req.params.id)
      return reply.code(204).send(null)
    },
  )

  app.get(
    '/conversations/:id/pins',
    {
      schema: {
        ...common,
        operationId: 'listPins',
        summary: "A conversation's pinned messages, latest pin first",
        description: `At most ${PINS_MAX_PAGE}.`,
        params: IdParams,
        querystring: Type.Object({ limit: Type.Optional(Limit(PINS_MAX_PAGE, PINS_MAX_PAGE)) }),
        response: { 200: Type.Object({ items: Type.Array(Message) }), ...notMember },
      },
    },
    async (req) => ({
      items: await pins.list(currentUser(req).id, req.params.id, req.query.limit ?? PINS_MAX_PAGE),
    }),
  )
}
