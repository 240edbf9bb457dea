import type { ClientFrame } from '../protocol/frames.js'
import type { Services } from '../services/index.js'
import type { Follower } from './follower.js'
import { encode, errorFrame, PONG } from './outbound.js'
import { TypingIndicators } from './typing.js'

/** What a frame handler may use of its socket (the Connection). */
export interface Session {
  readonly userId: string
  /** The conversation of a per-conversation socket. */
  readonly bound: string | undefined
  readonly services: Services
  readonly follower: Follower
  typing: TypingIndicators | undefined
  send(frame: string): void
  /** A fresh access token: the socket may live until `exp`. */
  extendUntil(exp: number): void
}

/** Frames that change stored state: refused once shutdown has begun, and waited for by it. */
export const WRITES = new Set<ClientFrame['type']>([
  'message.send',
  'message.edit',
  'message.delete',
  'reaction.add',
  'reaction.remove',
  'read',
])

type Handlers = {
  [K in ClientFrame['type']]: (
    c: Session,
    frame: Extract<ClientFrame, { type: K }>,
    receivedAt: number,
  ) => Promise<void> | void
}

/**
 * What each client frame does. One table for every connection (per-connection closures cost
 * each idle socket about 2 KB). Errors thrown here become `error` frames in `connection.ts`.
 */
const handlers: Handlers = {
  'message.send': async (c, f, receivedAt) => {
    const clientMsgId = f.client_msg_id ?? null
    const conversationId = target(c, f.conversation_id, clientMsgId)
    if (conversationId === undefined) return
    const { message } = await c.services.messages.send(
      c.userId,
      conversationId,
      f.content,
      clientMsgId,
      {
        reply_to: f.reply_to,
        mentions: f.mentions,
        attachment_ids: f.attachment_ids,
      },
      receivedAt,
    )
    c.send(encode({ type: 'message.ack', client_msg_id: clientMsgId, message }))
  },
  'message.edit': async (c, f) => {
    await c.services.messages.edit(c.userId, f.message_id, f.content)
  },
  'message.delete': async (c, f) => {
    await c.services.messages.delete(c.userId, f.message_id)
  },
  'reaction.add': async (c, f) => {
    await c.services.reactions.add(c.userId, f.message_id, f.emoji)
  },
  'reaction.remove': async (c, f) => {
    await c.services.reactions.remove(c.userId, f.message_id, f.emoji)
  },
  typing: (c, f) => {
    const conversationId = target(c, f.conversation_id)
    if (conversationId === undefined) return
    c.typing ??= new TypingIndicators(
      (id, state) =>
        c.services.broker.publish({ type: 'typing', conversation_id: id, user_id: c.userId, state }),
      c.services.config.ws.typingTtlMs,
      c.services.config.ws.typingRelayIntervalMs,
    )
    c.typing.set(conversationId, f.state)
  },
  read: async (c, f) => {
    const conversationId = target(c, f.conversation_id)
    if (conversationId === undefined) return
    await c.services.messages.markRead(c.userId, conversationId, f.seq)
  },
  sync: async (c, f) => {
    const unknown = await c.follower.resume(f.cursors, f.changes)
    if (unknown.length > 0) c.send(errorFrame('not_found', `not a member of: ${unknown.join(', ')}`))
  },
  ping: (c) => {
    c.send(PONG)
  },
  auth: async (c, f) => {
    // The same check as the upgrade: a deleted or deactivated account cannot extend its socket.
    const { user, exp } = await c.services.auth.authenticate(f.access_token)
    if (user.id !== c.userId) {
      c.send(errorFrame('unauthorized', 'the token belongs to another user'))
      return
    }
    c.extendUntil(exp)
  },
}

/** `receivedAt`: when the frame arrived (`performance.now()`), for the send's stage timings. */
export function dispatch(c: Session, frame: ClientFrame, receivedAt: number): Promise<void> | void {
  const handler = handlers[frame.type] as (c: Session, f: ClientFrame, at: number) => Promise<void> | void
  return handler(c, frame, receivedAt)
}

/**
 * The conversation a frame addresses (the bound one, or the one it names on the user socket) if
 * this socket follows it; otherwise answers with an error frame and returns undefined.
 */
function target(c: Session, named: string | undefined, clientMsgId?: string | null): string | undefined {
  const id = named ?? c.bound
  if (id === undefined) {
    c.send(errorFrame('validation_failed', 'conversation_id is required on the user socket', clientMsgId))
    return undefined
  }
  if ((c.bound && id !== c.bound) || !c.follower.follows(id)) {
    c.send(errorFrame('not_found', 'conversation not found', clientMsgId))
    return undefined
  }
  return id
}
