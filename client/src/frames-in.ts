import type { ConversationList } from './conversations.js'
import type { Delivery } from './delivery.js'
import { ChatError } from './errors.js'
import type { Outbox } from './outbox.js'
import type { PeerActivity } from './peers.js'
import type { ServerFrame } from './protocol.js'
import type { Message } from './rest-types.js'
import type { ChatEvents } from './types.js'

/** What incoming frames act on: the client's parts. */
export interface FrameContext {
  delivery: Delivery
  outbox: Outbox
  conversations: ConversationList
  peers: PeerActivity
  me(): string | undefined
  emit<K extends keyof ChatEvents>(event: K, payload: ChatEvents[K]): void
  showInTimelines(conversationId: string, message: Message): void
  /** The server could not replay what we missed: read it from history, then `sync` again. */
  catchUp(): Promise<void>
}

/** Every server frame, to the part of the client it concerns. */
export function routeFrame(f: ServerFrame, ctx: FrameContext): void {
  switch (f.type) {
    case 'message.new':
      ctx.delivery.receive(f.conversation_id, f.message)
      return
    case 'message.ack':
      if (f.client_msg_id) ctx.outbox.acked(f.client_msg_id, f.message)
      ctx.showInTimelines(f.message.conversation_id, f.message)
      return
    case 'message.updated':
    case 'message.deleted': {
      const event = { conversationId: f.conversation_id, message: f.message }
      ctx.showInTimelines(f.conversation_id, f.message)
      ctx.conversations.amended(f.conversation_id, f.message)
      ctx.emit(f.type, event)
      return
    }
    case 'read':
      ctx.conversations.markerMoved(f.conversation_id, f.user_id, f.seq)
      ctx.emit('read', { conversationId: f.conversation_id, userId: f.user_id, seq: f.seq })
      return
    case 'typing':
      ctx.peers.typed(f.conversation_id, f.user_id, f.state === 'start')
      return
    case 'presence':
      ctx.peers.announced(f.user_id, f.status)
      return
    case 'error':
      errorFrame(f, ctx)
      return
    default:
      membershipFrame(f, ctx)
  }
}

function membershipFrame(f: ServerFrame, ctx: FrameContext): void {
  const me = ctx.me()
  switch (f.type) {
    case 'conversation.created':
      // A new conversation starts at seq 0: its first message is 1.
      ctx.delivery.baseline(f.conversation_id, 0)
      void ctx.conversations.refresh(f.conversation_id)
      ctx.emit('conversation', { type: 'created', conversationId: f.conversation_id })
      return
    case 'conversation.updated':
      ctx.conversations.renamed(f.conversation_id, f.title)
      ctx.emit('conversation', {
        type: 'updated',
        conversationId: f.conversation_id,
        title: f.title,
      })
      return
    case 'member.added':
    case 'member.updated':
      void ctx.conversations.refresh(f.conversation_id)
      ctx.emit('conversation', {
        type: f.type,
        conversationId: f.conversation_id,
        userId: f.user_id,
        role: f.role,
      })
      return
    case 'member.removed':
      if (f.user_id === me) {
        // Everything up to the removal was delivered before this frame; nothing follows it.
        ctx.delivery.forget(f.conversation_id, true)
        ctx.conversations.remove(f.conversation_id)
      } else void ctx.conversations.refresh(f.conversation_id)
      ctx.emit('conversation', {
        type: 'member.removed',
        conversationId: f.conversation_id,
        userId: f.user_id,
      })
      return
    default:
  }
}

function errorFrame(f: Extract<ServerFrame, { type: 'error' }>, ctx: FrameContext): void {
  if (f.client_msg_id) {
    ctx.outbox.refused(f.client_msg_id, f.code, f.message)
    return
  }
  const error = new ChatError(f.code, f.message)
  ctx.emit('error', error)
  if (f.code === 'not_found' && f.message.startsWith('not a member of:')) {
    // `sync` named conversations the server does not know for us: stop resuming them.
    for (const id of f.message.slice('not a member of:'.length).split(',')) {
      const trimmed = id.trim()
      if (trimmed) ctx.delivery.forget(trimmed, true)
    }
    return
  }
  if (f.code === 'unavailable' || f.code === 'internal') void ctx.catchUp()
}
