import { describe, expect, it } from 'vitest'
import { CLIENT_FRAMES, checkClientFrame } from '../../src/protocol/frames.js'

const UUID = '0190a8c4-0000-7000-8000-000000000001'

describe('checkClientFrame', () => {
  const valid = [
    { type: 'message.send', content: 'hi' },
    { type: 'message.send', content: '', client_msg_id: 'k'.repeat(128), conversation_id: UUID },
    { type: 'message.edit', message_id: UUID, content: 'fixed' },
    { type: 'message.delete', message_id: UUID },
    { type: 'message.send', content: 'r', reply_to: UUID, mentions: [UUID, '@all'] },
    { type: 'reaction.add', message_id: UUID, emoji: '👍' },
    { type: 'reaction.remove', message_id: UUID, emoji: ':ok:' },
    { type: 'typing', state: 'start' },
    { type: 'typing', state: 'stop', conversation_id: UUID },
    { type: 'read', seq: 0 },
    { type: 'read', seq: Number.MAX_SAFE_INTEGER, conversation_id: UUID },
    { type: 'sync', cursors: { [UUID]: 3 } },
    { type: 'sync', cursors: {} },
    { type: 'ping' },
    { type: 'auth', access_token: 'a.b.c' },
  ]

  it.each(valid)('accepts and returns a valid $type frame as it is', (frame) => {
    expect(checkClientFrame(frame)).toBe(frame)
  })

  it('knows every client frame type, each covered above', () => {
    const types = CLIENT_FRAMES.map((s) => s.properties.type.const).sort()
    expect(types).toEqual([...new Set(valid.map((f) => f.type))].sort())
  })

  it.each([
    [{ type: 'message.send', content: 5 }, '/content must be string'],
    [{ type: 'message.send' }, '/ must have required properties content'],
    [{ type: 'message.send', content: 'x', extra: 1 }, '/extra schema is false'],
    [
      { type: 'message.send', content: 'x', client_msg_id: '' },
      '/client_msg_id must not have fewer than 1 characters',
    ],
    [
      { type: 'message.send', content: 'x', client_msg_id: 'k'.repeat(129) },
      '/client_msg_id must not have more than 128 characters',
    ],
    [
      { type: 'message.send', content: 'x'.repeat(65537) },
      '/content must not have more than 65536 characters',
    ],
    [{ type: 'message.edit', message_id: 'nope', content: 'x' }, '/message_id must match format "uuid"'],
    [{ type: 'read', seq: -1 }, '/seq must be >= 0'],
    [{ type: 'read', seq: 1.5 }, '/seq must be integer'],
    [{ type: 'sync', cursors: { [UUID]: -1 } }, `/cursors/${UUID} must be >= 0`],
    [{ type: 'typing', state: 'maybe' }, '/state must be equal to constant'],
    [{ type: 'auth', access_token: '' }, '/access_token must not have fewer than 1 characters'],
    [{ type: 'ping', extra: true }, '/extra schema is false'],
  ])('refuses %j as invalid_frame, naming the field', (frame, message) => {
    expect(checkClientFrame(frame)).toEqual({ code: 'invalid_frame', message })
  })

  it.each([
    [{ type: 'nope' }, 'unknown frame type "nope"'],
    [{ type: 5 }, 'unknown frame type 5'],
    [{}, 'unknown frame type undefined'],
    [null, 'unknown frame type undefined'],
    ['ping', 'unknown frame type undefined'],
    [[], 'unknown frame type undefined'],
  ])('refuses %j as unknown_type', (frame, message) => {
    expect(checkClientFrame(frame)).toEqual({ code: 'unknown_type', message })
  })

  it('quotes at most 64 characters of an unknown type', () => {
    const result = checkClientFrame({ type: 'x'.repeat(1000) })
    expect(result).toEqual({ code: 'unknown_type', message: `unknown frame type "${'x'.repeat(63)}` })
  })
})
