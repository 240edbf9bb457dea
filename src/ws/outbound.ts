import type { ErrorCode } from '../protocol/errors.js'
import type { ChatEvent } from '../protocol/events.js'
import type { MessageView } from '../protocol/message.js'
import type { ServerFrame } from '../protocol/server-frames.js'

/**
 * Every frame that leaves the server is built here from the `ServerFrame` union, so only frames
 * the AsyncAPI document describes can be sent. Frames are serialized once and shared by every
 * socket that receives them (a group of 1,000 costs one JSON.stringify, not 1,000).
 */
const messageFrames = new WeakMap<MessageView, string>()
const eventFrames = new WeakMap<ChatEvent, string>()

/** A frame as text; the one place outbound JSON is made. */
export const encode = (frame: ServerFrame): string => JSON.stringify(frame)

export function messageNewFrame(message: MessageView): string {
  let s = messageFrames.get(message)
  if (s === undefined) {
    s = encode({ type: 'message.new', conversation_id: message.conversation_id, message })
    messageFrames.set(message, s)
  }
  return s
}

/** The frame a non-message event becomes on the wire, or undefined when clients do not see it. */
export function eventFrame(event: ChatEvent): string | undefined {
  let s = eventFrames.get(event)
  if (s !== undefined) return s
  const frame = eventToFrame(event)
  if (!frame) return undefined
  s = encode(frame)
  eventFrames.set(event, s)
  return s
}

type Reactors = Record<string, string[]>
/** Frames of one event for recipients who reacted, by the emojis they reacted with. */
const personalFrames = new WeakMap<ChatEvent, Map<string, string>>()

/**
 * The frame of an event for one recipient: events that carry reactions set `me` from who the
 * recipient is. Everyone who has not reacted shares one string; each distinct set of the
 * recipient's own emojis is serialized once.
 */
export function eventFrameFor(event: ChatEvent, userId: string): string | undefined {
  const reactors: Reactors | undefined =
    event.type === 'message.reactions' ||
    ((event.type === 'message.updated' || event.type === 'message.deleted') && event.reactors)
      ? event.reactors
      : undefined
  const mine = reactors?.[userId]
  if (!mine || mine.length === 0) return eventFrame(event)
  const k = mine.join('\u0000')
  let byMine = personalFrames.get(event)
  if (!byMine) {
    byMine = new Map()
    personalFrames.set(event, byMine)
  }
  let s = byMine.get(k)
  if (s === undefined) {
    const frame = eventToFrame(event, new Set(mine))
    if (!frame) return undefined
    s = encode(frame)
    byMine.set(k, s)
  }
  return s
}

function eventToFrame(e: ChatEvent, mine: Set<string> = new Set()): ServerFrame | undefined {
  switch (e.type) {
    case 'message.updated':
    case 'message.deleted': {
      const reactions = e.message.reactions.map((r) => ({ ...r, me: mine.has(r.emoji) }))
      return { type: e.type, conversation_id: e.conversation_id, message: { ...e.message, reactions } }
    }
    case 'message.thread':
      return {
        type: e.type,
        conversation_id: e.conversation_id,
        message_id: e.message_id,
        seq: e.seq,
        change_seq: e.change_seq,
        thread: e.thread,
      }
    case 'message.reactions':
      return {
        type: e.type,
        conversation_id: e.conversation_id,
        message_id: e.message_id,
        seq: e.seq,
        rev: e.rev,
        change_seq: e.change_seq,
        reactions: e.reactions.map((r) => ({ ...r, me: mine.has(r.emoji) })),
      }
    case 'message.pinned':
      return {
        type: e.type,
        conversation_id: e.conversation_id,
        message_id: e.message_id,
        seq: e.seq,
        pinned_by: e.pinned_by,
        pinned_at: e.pinned_at,
        change_seq: e.change_seq,
      }
    case 'message.unpinned':
      return {
        type: e.type,
        conversation_id: e.conversation_id,
        message_id: e.message_id,
        seq: e.seq,
        change_seq: e.change_seq,
      }
    case 'messages.expired':
      return { type: e.type, conversation_id: e.conversation_id, seqs: e.seqs, expired_at: e.expired_at }
    case 'read':
      return { type: 'read', conversation_id: e.conversation_id, user_id: e.user_id, seq: e.seq }
    case 'typing':
      return { type: 'typing', conversation_id: e.conversation_id, user_id: e.user_id, state: e.state }
    case 'presence':
      return { type: 'presence', user_id: e.user_id, status: e.status }
    case 'conversation.created':
      return { type: 'conversation.created', conversation_id: e.conversation_id }
    case 'conversation.updated':
      return { type: 'conversation.updated', conversation_id: e.conversation_id, title: e.title }
    case 'member.added':
      return { type: 'member.added', conversation_id: e.conversation_id, user_id: e.user_id, role: e.role }
    case 'member.updated':
      return { type: 'member.updated', conversation_id: e.conversation_id, user_id: e.user_id, role: e.role }
    case 'member.removed':
      return { type: 'member.removed', conversation_id: e.conversation_id, user_id: e.user_id }
    default:
      return undefined
  }
}

export const errorFrame = (code: ErrorCode, message: string, clientMsgId?: string | null): string =>
  encode({
    type: 'error',
    code,
    message,
    ...(clientMsgId !== undefined ? { client_msg_id: clientMsgId } : {}),
  })

export const PONG = encode({ type: 'pong' })

interface Corkable {
  cork(): void
  uncork(): void
}
const corked = new Set<Corkable>()
const uncorkAll = () => {
  for (const s of corked) s.uncork()
  corked.clear()
}

/**
 * Holds a socket's writes until the end of this event-loop turn, so the frames it gets in one
 * turn (a message.new and its ack, or every message of a group-committed batch) leave in one
 * write instead of one syscall each. `ws` exposes no cork, so this reaches its TCP socket.
 * Profiled: per-frame writev was the largest cost of delivery (docs/performance.md).
 */
export function corkForThisTurn(socket: import('ws').WebSocket): void {
  const raw = (socket as unknown as { _socket?: Corkable })._socket
  if (!raw || corked.has(raw)) return
  if (corked.size === 0) setImmediate(uncorkAll)
  raw.cork()
  corked.add(raw)
}
