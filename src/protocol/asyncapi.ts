import { CloseCode } from './close-codes.js'
import { ClientFrame, PROTOCOL_VERSION } from './frames.js'
import { ServerFrames } from './server-frames.js'

const SOCKETS = {
  userSocket: {
    address: '/api/v1/chat/ws',
    description:
      "One socket for all of the user's conversations; frames carry conversation_id. Also receives conversation.* and member.* events. " +
      'Resume with a `sync` frame; open it with `?resume=true` and send `sync` first to get the missed messages ' +
      'strictly before live ones (messages are held until the first frame).',
    parameters: {},
  },
  conversationSocket: {
    address: '/api/v1/chat/ws/conversations/{conversation_id}',
    description:
      'A socket bound to one conversation. `?since_seq=N` delivers every message after N, then live ones.',
    parameters: {
      conversation_id: {
        description: 'A conversation the user is a member of (else 404 before the upgrade).',
      },
    },
  },
} as const

const name = (type: string) => type.replace(/\./g, '_')

/**
 * The AsyncAPI 3 document of the WebSocket protocol, built from the same TypeBox schemas that
 * validate frames. `npm run asyncapi` writes it to docs/asyncapi.yaml; a test fails when stale.
 */
export function asyncApiDocument() {
  const client = ClientFrame.anyOf.map((s) => ({ type: s.properties.type.const as string, schema: s }))
  const server = ServerFrames.map((s) => ({ type: s.properties.type.const as string, schema: s }))
  const messages = Object.fromEntries(
    [...client, ...server].map(({ type, schema }) => [
      `${client.some((c) => c.type === type) && server.some((s) => s.schema === schema) ? 'server_' : ''}${name(type)}`,
      {
        name: type,
        summary: (schema as { description?: string }).description,
        payload: JSON.parse(JSON.stringify(schema)),
      },
    ]),
  )
  const serverKey = (type: string) =>
    client.some((c) => c.type === type) ? `server_${name(type)}` : name(type)
  const clientRefs = client.map((c) => ({ $ref: `#/components/messages/${name(c.type)}` }))
  const serverRefs = server.map((s) => ({ $ref: `#/components/messages/${serverKey(s.type)}` }))
  const channels = Object.fromEntries(
    Object.entries(SOCKETS).map(([id, s]) => [
      id,
      {
        ...s,
        messages: Object.fromEntries([
          ...client.map((c) => [name(c.type), { $ref: `#/components/messages/${name(c.type)}` }]),
          ...server.map((c) => [serverKey(c.type), { $ref: `#/components/messages/${serverKey(c.type)}` }]),
        ]),
      },
    ]),
  )
  const operations = Object.fromEntries(
    Object.keys(SOCKETS).flatMap((id) => [
      [
        `${id}Send`,
        {
          action: 'receive',
          description: 'Frames a client sends; one that fails its schema is answered by an `error` frame.',
          channel: { $ref: `#/channels/${id}` },
          messages: clientRefs.map((r) => ({
            $ref: r.$ref.replace('#/components/messages/', `#/channels/${id}/messages/`),
          })),
        },
      ],
      [
        `${id}Receive`,
        {
          action: 'send',
          description: 'Frames the server sends: answers, live events, presence and typing.',
          channel: { $ref: `#/channels/${id}` },
          messages: serverRefs.map((r) => ({
            $ref: r.$ref.replace('#/components/messages/', `#/channels/${id}/messages/`),
          })),
        },
      ],
    ]),
  )
  return {
    asyncapi: '3.0.0',
    info: {
      title: 'Chat API WebSocket protocol',
      version: String(PROTOCOL_VERSION),
      description: [
        'JSON text frames, each with a `type`. Authenticate with `Authorization: Bearer <access_token>`, a single-use `?ticket=` ' +
          '(POST /api/v1/chat/ws-ticket), or the subprotocol pair `bearer, <access_token>`. Refusals happen before the upgrade: ' +
          '401 (token/ticket), 403 (Origin), 404 (not a member), 429 (too many sockets).',
        `Close codes: ${Object.entries(CloseCode)
          .map(([k, v]) => `${v} ${k}`)
          .join(', ')}.`,
      ].join('\n\n'),
      // The same as /openapi.json's (src/http/openapi.ts).
      contact: { name: 'Chat API maintainers' },
      license: { name: 'UNLICENSED: private project, no rights granted' },
      tags: [{ name: 'chat', description: 'Real-time messaging, typing and presence' }],
    },
    servers: { local: { host: 'localhost:8000', protocol: 'ws' } },
    channels,
    operations,
    components: { messages },
  }
}
