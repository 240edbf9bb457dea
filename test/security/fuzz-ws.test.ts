import { eq } from 'drizzle-orm'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { isReaction } from '../../src/services/emoji.js'
import { messages } from '../../src/store/schema.js'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { type Frame, TestSocket } from '../helpers/ws-client.js'
import { fuzzRuns, hostileString, invalidBody, protoObject, roundTripText, toJson } from './arbitraries.js'
import { asyncApi, buildWorld, type World } from './fixtures.js'

/** Frames above WS_MAX_FRAME_BYTES close the socket by design (1009; see limits and raw-abuse tests). */
const FRAME_BUDGET = 16_000

describe('WebSocket fuzzing: every client frame type of the AsyncAPI document', () => {
  let t: TestApp
  let w: World
  let s: TestSocket
  let watcher: TestSocket
  const { clientFrames } = asyncApi()

  beforeAll(async () => {
    // Every refused frame counts as a violation; let the fuzzer send many on one socket.
    t = await startTestApp({ env: { WS_MAX_VIOLATIONS: '1000' } })
    await t.listen()
    w = await buildWorld(t)
    s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: w.owner.token })
    watcher = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: w.member.token })
    await s.waitFor((f) => f.type === 'ready')
    await watcher.waitFor((f) => f.type === 'ready')
  })
  afterAll(async () => {
    s?.close()
    watcher?.close()
    await t?.close()
  })

  /** Sends one frame and returns the error frame it earned; the socket must still answer a ping after it. */
  async function refusal(frame: string): Promise<Frame> {
    const from = s.frames.length
    s.send(frame)
    const error = await s.waitFor((f) => f.type === 'error', { from })
    await s.settle()
    expect(s.closed, `socket closed after ${frame.slice(0, 200)}`).toBeUndefined()
    return error
  }

  const healthy = async () => {
    expect((await t.app.inject('/health')).statusCode).toBe(200)
    await s.settle()
    expect(s.closed).toBeUndefined()
  }

  it('reads the frame types from the AsyncAPI document', () => {
    expect([...clientFrames.keys()].sort()).toEqual(
      [
        'auth',
        'message.delete',
        'message.edit',
        'message.send',
        'ping',
        'reaction.add',
        'reaction.remove',
        'read',
        'sync',
        'typing',
      ].sort(),
    )
  })

  it('a frame its schema refuses (wrong types, extra or missing fields, __proto__, 2^53+1) gets an error frame', async () => {
    for (const [type, schema] of clientFrames) {
      const extraKey = fc
        .tuple(fc.string({ minLength: 1, maxLength: 10 }), fc.anything())
        .filter(([k]) => !(k in (schema.properties ?? {})))
        .map(([k, v]) =>
          Object.fromEntries([
            ['type', type],
            [k, v],
          ]),
        )
      const frames = fc
        .oneof(
          invalidBody(schema, { uuid: w.group }),
          extraKey,
          protoObject.map((p) => ({ type, ...p })),
        )
        .map(toJson)
        .filter((text) => Buffer.byteLength(text) <= FRAME_BUDGET)
      await fc.assert(
        fc.asyncProperty(frames, async (frame) => {
          const { code } = await refusal(frame)
          expect(['invalid_frame', 'unknown_type'], frame.slice(0, 200)).toContain(code)
        }),
        fuzzRuns(40),
      )
    }
    await healthy()
    expect(({} as Record<string, unknown>).polluted).toBeUndefined()
  })

  it('text that is not JSON, or JSON that is not an object, gets an error frame', async () => {
    const text = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 100 }).filter((t) => {
        try {
          const v = JSON.parse(t)
          return v === null || typeof v !== 'object' || Array.isArray(v)
        } catch {
          return true
        }
      }),
      fc.constantFrom('', '{', '{"type":"ping"', 'null', '[]', '[{"type":"ping"}]', '"ping"', '1e400'),
      fc.integer({ min: 100, max: 5000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
    )
    await fc.assert(
      fc.asyncProperty(text, async (frame) => {
        const { code } = await refusal(frame)
        expect(['invalid_json', 'unknown_type', 'invalid_frame']).toContain(code)
      }),
      fuzzRuns(60),
    )
    await healthy()
  })

  it('a well-formed frame with hostile values gets an error frame with the right code', async () => {
    const badContent = fc.oneof(
      fc
        .string({ unit: fc.constantFrom('\u0000', 'a', ' '), minLength: 1, maxLength: 20 })
        .filter((x) => x.includes('\u0000')),
      fc.constantFrom('\uD800', 'a\uDC00b', '\uDBFF', ' \t\n ', '\u00A0\u2028'),
      fc.integer({ min: 4001, max: 5000 }).map((n) => 'x'.repeat(n)),
    )
    const cases = fc.oneof(
      badContent.map((content) => {
        const cmid = crypto.randomUUID()
        return {
          frame: { type: 'message.send', conversation_id: w.group, content, client_msg_id: cmid },
          code: 'validation_failed',
          cmid,
        }
      }),
      badContent.map((content) => ({
        frame: { type: 'message.edit', message_id: w.message, content },
        code: 'validation_failed',
      })),
      fc.tuple(fc.uuid(), hostileString).map(([id, content]) => ({
        frame: { type: 'message.send', conversation_id: id, content, client_msg_id: 'x' },
        code: 'not_found',
      })),
      fc.uuid().map((id) => ({ frame: { type: 'message.delete', message_id: id }, code: 'not_found' })),
      fc
        .string({ minLength: 1, maxLength: 64 })
        .filter((e) => !isReaction(e.normalize('NFC')))
        .map((emoji) => ({
          frame: { type: 'reaction.add', message_id: w.message, emoji },
          code: 'validation_failed',
        })),
      fc.uuid().map((id) => ({
        frame: { type: 'reaction.remove', message_id: id, emoji: '👍' },
        code: 'not_found',
      })),
      fc
        .uuid()
        .map((id) => ({ frame: { type: 'message.edit', message_id: id, content: 'x' }, code: 'not_found' })),
      fc.tuple(fc.uuid(), fc.constantFrom('start', 'stop')).map(([id, state]) => ({
        frame: { type: 'typing', conversation_id: id, state },
        code: 'not_found',
      })),
      fc.tuple(fc.uuid(), fc.maxSafeNat()).map(([id, seq]) => ({
        frame: { type: 'read', conversation_id: id, seq },
        code: 'not_found',
      })),
      fc.dictionary(fc.uuid(), fc.maxSafeNat(), { minKeys: 1, maxKeys: 50 }).map((cursors) => ({
        frame: { type: 'sync', cursors },
        code: 'not_found',
      })),
      fc.string({ minLength: 1, maxLength: 4096 }).map((token) => ({
        frame: { type: 'auth', access_token: token },
        code: 'unauthorized',
      })),
    )
    await fc.assert(
      fc.asyncProperty(cases, async ({ frame, code, ...rest }) => {
        const text = JSON.stringify(frame)
        fc.pre(Buffer.byteLength(text) <= FRAME_BUDGET)
        const error = await refusal(text)
        expect(error.code, text.slice(0, 200)).toBe(code)
        if ('cmid' in rest) expect(error.client_msg_id).toBe(rest.cmid)
      }),
      fuzzRuns(80),
    )
    // The group still holds only what buildWorld put in it (the attachment's message has no text):
    // nothing hostile was stored.
    const stored = await t.database.db.select().from(messages).where(eq(messages.conversationId, w.group))
    expect(stored.map((m) => m.content).sort()).toEqual([w.secret, 'said while still a member', ''].sort())
    await healthy()
  })

  it('a message sent over the socket round-trips byte for byte (emoji, RTL, combining marks)', async () => {
    await fc.assert(
      fc.asyncProperty(roundTripText, async (text) => {
        const expected = text.trim()
        const cmid = crypto.randomUUID()
        const from = s.frames.length
        s.send({ type: 'message.send', conversation_id: w.group, content: text, client_msg_id: cmid })
        const ack = await s.waitFor((f) => f.client_msg_id === cmid, { from })
        expect(ack.type).toBe('message.ack')
        const message = ack.message as { id: string; content: string }
        expect(message.content).toBe(expected)
        const seen = await watcher.waitFor(
          (f) => f.type === 'message.new' && (f.message as { id: string }).id === message.id,
        )
        expect((seen.message as { content: string }).content).toBe(expected)
        const [row] = await t.database.db.select().from(messages).where(eq(messages.id, message.id))
        expect(Buffer.from(row?.content ?? '', 'utf8').equals(Buffer.from(expected, 'utf8'))).toBe(true)
      }),
      fuzzRuns(40),
    )
    await healthy()
  })
})
