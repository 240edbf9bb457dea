import { describe, expect, it } from 'vitest'
import type WebSocket from 'ws'
import { useSocketApp } from '../helpers/socket-app.js'
import { conversationSocketUrl, history, range, TestSocket } from '../helpers/ws-client.js'

describe('WebSocket frame limits and violations', () => {
  const ctx = useSocketApp({ WS_MAX_FRAME_BYTES: '2048', WS_MAX_VIOLATIONS: '3' })

  it('closes with 1009 on a frame over WS_MAX_FRAME_BYTES', async () => {
    const { a, conv } = await ctx.pair()
    const s = await ctx.socket(a, conv)
    s.send({ type: 'message.send', content: 'x'.repeat(3000) })
    expect((await s.waitClose()).code).toBe(1009)
  })

  it('answers malformed JSON, an unknown type and a schema violation with error frames and stays open', async () => {
    const { a, conv } = await ctx.pair()
    const s = await ctx.socket(a, conv)
    s.send('{"type": "message.send", ')
    expect(await s.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'invalid_json' })
    s.send({ type: 'launch.rockets' })
    expect(await s.waitFor((f) => f.type === 'error' && f.code !== 'invalid_json')).toMatchObject({
      code: 'unknown_type',
    })
    // Fewer than WS_MAX_VIOLATIONS so far: a valid frame still works.
    await s.settle()
    s.send({ type: 'message.send', content: 42, client_msg_id: 'typed' })
    expect(await s.waitFor((f) => f.type === 'error' && f.code === 'invalid_frame')).toMatchObject({
      client_msg_id: 'typed',
      message: expect.stringContaining('/content'),
    })
    expect(s.closed).toBeUndefined()
  })

  it('answers a binary frame with an error frame', async () => {
    const { a, conv } = await ctx.pair()
    const s = await ctx.socket(a, conv)
    s.sendRaw(Buffer.from('{"type":"ping"}'), { binary: true })
    expect(await s.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'invalid_frame' })
    await s.settle()
    expect(s.closed).toBeUndefined()
  })

  it('closes with 1008 after WS_MAX_VIOLATIONS invalid frames', async () => {
    const { a } = await ctx.pair()
    const s = await ctx.socket(a)
    for (const bad of ['nope', '{"type":"nope"}', '{"type":"ping","extra":1}']) s.send(bad)
    expect((await s.waitClose()).code).toBe(1008)
    expect(s.ofType('error')).toHaveLength(3)
  })
})

describe('WebSocket send rate limit', () => {
  const ctx = useSocketApp({
    RATE_LIMITS: 'on',
    MESSAGE_RATE_PER_SEC: '1',
    MESSAGE_RATE_BURST: '2',
  })

  it('refuses sends past the burst with rate_limited and the client_msg_id, storing nothing for them', async () => {
    const { a, conv } = await ctx.pair()
    const s = await ctx.socket(a, conv)
    for (const i of range(1, 4)) s.send({ type: 'message.send', content: `m${i}`, client_msg_id: `r${i}` })
    await s.collect('message.ack', 2)
    const errors = await s.collect('error', 2)
    expect(errors.map((e) => e.code)).toEqual(['rate_limited', 'rate_limited'])
    expect(errors.map((e) => e.client_msg_id)).toEqual(['r3', 'r4'])
    expect(s.ofType('message.ack').map((f) => f.client_msg_id)).toEqual(['r1', 'r2'])
    expect((await history(ctx.t.app, a, conv)).map((m) => m.client_msg_id)).toEqual(['r1', 'r2'])
  })

  it('shares the bucket between the sockets of one user', async () => {
    const { a, conv } = await ctx.pair()
    const [s1, s2] = [await ctx.socket(a, conv), await ctx.socket(a)]
    s1.send({ type: 'message.send', content: 'one', client_msg_id: 'x1' })
    s1.send({ type: 'message.send', content: 'two', client_msg_id: 'x2' })
    await s1.collect('message.ack', 2)
    s2.send({ type: 'message.send', conversation_id: conv, content: 'three', client_msg_id: 'x3' })
    expect(await s2.waitFor((f) => f.type === 'error')).toMatchObject({
      code: 'rate_limited',
      client_msg_id: 'x3',
    })
  })
})

describe('WebSocket slow consumer', () => {
  const ctx = useSocketApp({ WS_MAX_BACKLOG_BYTES: '1024', MESSAGE_MAX_CHARS: '60000' })

  /** The server's side of the client sockets, to see when one was told to close. */
  const serverSockets = () => [...(ctx.t.app.websocketServer.clients as Set<WebSocket>)]

  it('closes a reader that stopped reading with 1013 once its backlog passes the bound; it resumes on reconnect', async () => {
    const { a, b, conv } = await ctx.pair()
    const slow = await ctx.socket(a, conv)
    await slow.waitFor((f) => f.type === 'ready')
    const raw = (slow.ws as unknown as { _socket: import('node:net').Socket })._socket
    raw.pause()
    // Fill the kernel's buffers first; then the server's own backlog grows and passes the bound.
    const big = 'y'.repeat(50_000)
    let sent = 0
    while (!serverSockets().some((w) => w.readyState === 2 /* CLOSING */)) {
      if (sent >= 2000) throw new Error('the server never closed the slow socket')
      await Promise.all(range(1, 10).map(() => ctx.t.services.messages.send(b.id, conv, big)))
      sent += 10
    }
    raw.resume()
    expect((await slow.waitClose(15_000)).code).toBe(1013)
    // What it got is an unbroken prefix; a reconnect from its last seq gets the rest, each once.
    const last = slow.seqs(conv).at(-1) ?? 0
    expect(slow.seqs(conv)).toEqual(range(1, last))
    await ctx.t.services.messages.send(b.id, conv, 'while it was away')
    const total = sent + 1
    const again = await TestSocket.open(conversationSocketUrl(ctx.t.url, conv, `?since_seq=${last}`), {
      token: a.token,
    })
    ctx.track(again)
    await again.collect('message.new', total - last, 30_000)
    await again.settle()
    expect(again.seqs(conv)).toEqual(range(last + 1, total))
  })
})
