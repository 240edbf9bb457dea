import type { ChangePositions } from './changes.js'
import type { ConversationList } from './conversations.js'
import type { Delivery } from './delivery.js'
import { ChatError } from './errors.js'
import type { Outbox } from './outbox.js'
import type { PeerActivity } from './peers.js'
import type { MessagePatchFrame, ServerFrame } from './protocol.js'
import type { OpenTimelines } from './timeline.js'
import type { ChatEvents, MessageChangedEvent } from './types.js'

/** What incoming frames act on: the client's parts. */
export interface FrameContext {
  delivery: Delivery
  changes: ChangePositions
  outbox: Outbox
  conversations: ConversationList
  peers: PeerActivity
  me(): string | undefined
  emit<K extends keyof ChatEvents>(event: K, payload: ChatEvents[K]): void
  timelines: OpenTimelines
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
      ctx.timelines.each(f.message.conversation_id, (t) => t.put(f.message))
      return
    case 'message.updated':
    case 'message.deleted': {
      const event = { conversationId: f.conversation_id, message: f.message }
      ctx.timelines.each(f.conversation_id, (t) => t.put(f.message))
      ctx.conversations.amended(f.conversation_id, f.message)
      ctx.emit(f.type, event)
      ctx.changes.noted(f.conversation_id, f.message.change_seq)
      return
    }
    case 'message.changed':
    case 'message.reactions':
    case 'message.thread':
    case 'message.pinned':
    case 'message.unpinned':
      messageChanged(ctx, changeOf(f))
      ctx.changes.noted(f.conversation_id, f.type === 'message.changed' ? f.message.change_seq : f.change_seq)
      return
    case 'messages.expired':
      ctx.timelines.each(f.conversation_id, (t) => t.expired(f.seqs, f.expired_at))
      ctx.conversations.expired(f.conversation_id, f.seqs, f.expired_at)
      ctx.emit('messages.expired', {
        conversationId: f.conversation_id,
        seqs: f.seqs,
        expiredAt: f.expired_at,
      })
      return
    case 'changes.synced':
      ctx.changes.synced(f.conversation_id, f.change_seq)
      // Too much changed to re-send: timelines of the conversation read what they show again.
      if (!f.complete) ctx.timelines.each(f.conversation_id, (t) => t.reload())
      ctx.emit('changes.synced', {
        conversationId: f.conversation_id,
        changeSeq: f.change_seq,
        complete: f.complete,
      })
      return
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

/** A change to a message: timelines and the conversation list apply it, then `message.changed`. */
function messageChanged(ctx: FrameContext, e: MessageChangedEvent): void {
  ctx.timelines.each(e.conversationId, (t) => t.changed(e))
  ctx.conversations.changed(e)
  ctx.emit('message.changed', e)
}

/** What a change frame changes, as the fields of a Message. */
function changeOf(
  f: MessagePatchFrame | Extract<ServerFrame, { type: 'message.changed' }>,
): MessageChangedEvent {
  const at = { conversationId: f.conversation_id }
  switch (f.type) {
    case 'message.changed':
      return {
        ...at,
        messageId: f.message.id,
        seq: f.message.seq,
        changeSeq: f.message.change_seq,
        changes: f.message,
      }
    case 'message.reactions':
      return { ...at, ...ids(f), changes: { reactions: f.reactions } }
    case 'message.thread':
      return { ...at, ...ids(f), changes: { thread: f.thread } }
    case 'message.pinned':
      return { ...at, ...ids(f), changes: { pinned_at: f.pinned_at } }
    case 'message.unpinned':
      return { ...at, ...ids(f), changes: { pinned_at: null } }
  }
}

const ids = (f: MessagePatchFrame) => ({ messageId: f.message_id, seq: f.seq, changeSeq: f.change_seq })

function membershipFrame(f: ServerFrame, ctx: FrameContext): void {
  const me = ctx.me()
  switch (f.type) {
    case 'conversation.created':
      // A new conversation starts at seq 0: its first message is 1.
      ctx.delivery.baseline(f.conversation_id, 0)
      ctx.changes.baseline(f.conversation_id, 0)
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
        ctx.changes.forget(f.conversation_id)
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
      if (!trimmed) continue
      ctx.delivery.forget(trimmed, true)
      ctx.changes.forget(trimmed)
    }
    return
  }
  if (f.code === 'unavailable' || f.code === 'internal') void ctx.catchUp()
}
