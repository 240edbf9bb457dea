import { describe, expect, it } from 'vitest'
import { envelopeText } from '../../src/broker/redis.js'
import { parseEnvelope } from '../../src/protocol/events.js'
import type { MessageView } from '../../src/protocol/message.js'
import { encode, messageAckFrame, messageNewFrame } from '../../src/ws/outbound.js'

/**
 * The message.new and message.ack frames (and the Redis envelope, test/integration/cluster.test.ts)
 * are written around the message's JSON made once; they must be the documents the typed
 * `encode` would make.
 */
const message: MessageView = {
  id: '0190a0b0-0000-7000-8000-000000000001',
  conversation_id: '0190a0b0-0000-7000-8000-000000000002',
  seq: 7,
  sender_id: '0190a0b0-0000-7000-8000-000000000003',
  content: 'quotes " and \\ and \u2028 and emoji 🎉',
  client_msg_id: 'c-1',
  created_at: '2026-12-02T10:00:00.000Z',
  edited_at: null,
  deleted_at: null,
  attachments: [],
  reply_to: null,
  mentions: [],
  mentions_all: false,
  reactions: [],
  thread: null,
  pinned_at: null,
}

describe('frames around a message made once', () => {
  it('message.new is the document encode makes', () => {
    const frame = messageNewFrame(message)
    expect(JSON.parse(frame)).toEqual(
      JSON.parse(encode({ type: 'message.new', conversation_id: message.conversation_id, message })),
    )
    // Made once per message object.
    expect(messageNewFrame(message)).toBe(frame)
  })

  it('message.ack is the document encode makes, with and without a client_msg_id', () => {
    for (const cmid of ['c-1', 'with "quotes"', null]) {
      expect(JSON.parse(messageAckFrame(cmid, message))).toEqual(
        JSON.parse(encode({ type: 'message.ack', client_msg_id: cmid, message })),
      )
    }
  })

  it("the broker envelope of a new message is JSON.stringify's document and passes the broker check", () => {
    const e = {
      type: 'message.created' as const,
      conversation_id: message.conversation_id,
      message,
      members_version: 3,
    }
    const text = envelopeText('instance-1', e)
    expect(JSON.parse(text)).toEqual({ o: 'instance-1', e })
    expect(text.startsWith('{"o":"instance-1",')).toBe(true)
    expect(parseEnvelope(text)?.e).toEqual(e)
  })
})
