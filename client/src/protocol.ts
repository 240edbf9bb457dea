import type { Message } from './rest-types.js'

/**
 * The WebSocket frames the SDK speaks (docs/asyncapi.yaml is the reference; protocol version 1).
 * Written out by hand: the package does not import the server's code.
 */
export type ClientFrame =
  | { type: 'message.send'; conversation_id: string; content: string; client_msg_id: string }
  | { type: 'typing'; conversation_id: string; state: 'start' | 'stop' }
  | { type: 'read'; conversation_id: string; seq: number }
  | { type: 'sync'; cursors: Record<string, number>; changes?: Record<string, number> }
  | { type: 'ping' }
  | { type: 'auth'; access_token: string }

export type ServerFrame =
  | { type: 'ready'; user_id: string; protocol: number; conversation_id?: string }
  | { type: 'message.new'; conversation_id: string; message: Message }
  | { type: 'message.ack'; client_msg_id: string | null; message: Message }
  | { type: 'message.updated'; conversation_id: string; message: Message }
  | { type: 'message.deleted'; conversation_id: string; message: Message }
  | { type: 'message.changed'; conversation_id: string; message: Message }
  | { type: 'changes.synced'; conversation_id: string; change_seq: number; complete: boolean }
  | { type: 'messages.expired'; conversation_id: string; seqs: number[]; expired_at: string }
  | MessagePatchFrame
  | { type: 'read'; conversation_id: string; user_id: string; seq: number }
  | { type: 'typing'; conversation_id: string; user_id: string; state: 'start' | 'stop' }
  | { type: 'presence'; user_id: string; status: 'online' | 'offline' }
  | { type: 'conversation.created'; conversation_id: string }
  | { type: 'conversation.updated'; conversation_id: string; title: string | null }
  | { type: 'member.added'; conversation_id: string; user_id: string; role: string }
  | { type: 'member.updated'; conversation_id: string; user_id: string; role: string }
  | { type: 'member.removed'; conversation_id: string; user_id: string }
  | { type: 'error'; code: string; message: string; client_msg_id?: string | null }
  | { type: 'pong' }

/** Events that change part of a message: each carries the change's number. */
export type MessagePatchFrame = {
  conversation_id: string
  message_id: string
  seq: number
  change_seq: number
} & (
  | { type: 'message.reactions'; rev: number; reactions: Message['reactions'] }
  | { type: 'message.thread'; thread: NonNullable<Message['thread']> }
  | { type: 'message.pinned'; pinned_by: string | null; pinned_at: string }
  | { type: 'message.unpinned' }
)

/**
 * A message the conversation's retention expired, as history shows it from then on: a tombstone
 * like a deleted message (docs/client.md, "Retention's expiry is a change too"). Its change
 * number is left as it was: the frame carries none, and the `sync` re-send that follows carries
 * the real one (and the same fields).
 */
export function expiredCopy(m: Message, expiredAt: string): Message {
  if (m.deleted_at !== null) return m
  return {
    ...m,
    content: '',
    attachments: [],
    deleted_at: expiredAt,
    reactions: [],
    mentions: [],
    mentions_all: false,
    pinned_at: null,
    thread: null,
  }
}

/** The close codes the server uses (src/protocol/close-codes.ts). */
export const CloseCode = {
  Normal: 1000,
  GoingAway: 1001,
  Abnormal: 1006,
  PolicyViolation: 1008,
  MessageTooBig: 1009,
  TryAgainLater: 1013,
  Unauthorized: 4401,
  Forbidden: 4403,
} as const

export const PROTOCOL_VERSION = 1

/** Parses a text frame; undefined for anything that is not a JSON object with a string `type`. */
export function parseServerFrame(data: unknown): ServerFrame | undefined {
  if (typeof data !== 'string') return undefined
  try {
    const value = JSON.parse(data) as unknown
    if (value && typeof value === 'object' && typeof (value as { type?: unknown }).type === 'string')
      return value as ServerFrame
  } catch {
    return undefined
  }
  return undefined
}
