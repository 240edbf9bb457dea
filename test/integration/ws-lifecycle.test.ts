import postgres from 'postgres'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { Connection } from '../../src/ws/connection.js'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { lockConversations } from '../helpers/pg.js'
import {
  conversationSocketUrl,
  directChat,
  type Frame,
  type OpenOptions,
  restSend,
  signAccessToken,
  TestSocket,
  userSocketUrl,
} from '../helpers/ws-client.js'

/** How a socket ends: heartbeat, token expiry (and its extension), graceful shutdown. */
describe('WebSocket heartbeat and token expiry', () => {
  let t: TestApp
  const open: TestSocket[] = []

  beforeAll(async () => {
    t = await startTestApp({ env: { WS_HEARTBEAT_MS: '200' } })
    await t.listen()
  })
  afterEach(() => {
    for (const s of open.splice(0)) s.close()
  })
  afterAll(async () => t?.close())

  const socket = async (url: string, opts: OpenOptions) => {
    const s = await TestSocket.open(url, opts)
    open.push(s)
    return s
  }
  const pair = async () => {
    const a = await registerUser(t.app, 'Ann')
    const b = await registerUser(t.app, 'Bob')
    return { a, b, conv: await directChat(t.app, a, b) }
  }

  it('terminates a client that does not answer pings, and keeps one that does', async () => {
    const { a, b } = await pair()
    const watcher = await socket(userSocketUrl(t.url), { token: b.token })
    const deaf = await socket(userSocketUrl(t.url), { token: a.token, autoPong: false })
    const healthy = await socket(userSocketUrl(t.url), { token: b.token })
    // Terminated, not closed: no close frame, so the client sees 1006.
    expect((await deaf.waitClose(5000)).code).toBe(1006)
    await pings(healthy, 3)
    await healthy.settle()
    expect(healthy.closed).toBeUndefined()
    // Its user went offline with it.
    await watcher.waitFor((f) => f.type === 'presence' && f.user_id === a.id && f.status === 'offline')
  })

  it('closes with 4401 when the access token expires', async () => {
    const { a, conv } = await pair()
    const s = await socket(conversationSocketUrl(t.url, conv), { token: await signAccessToken(a.id, 3) })
    expect(await s.waitClose(8000)).toMatchObject({ code: 4401 })
  })

  it('keeps a socket open past the first expiry once an `auth` frame brought a fresh token', async () => {
    const { a, b, conv } = await pair()
    const short = await signAccessToken(a.id, 3)
    const renewed = await socket(conversationSocketUrl(t.url, conv), { token: short })
    const control = await socket(userSocketUrl(t.url), { token: short })
    renewed.send({ type: 'auth', access_token: a.token })
    await renewed.settle()
    // Same expiry as `renewed` had: once it has gone, `renewed` would have gone too.
    expect((await control.waitClose(8000)).code).toBe(4401)
    await renewed.settle()
    expect(renewed.closed).toBeUndefined()
    expect(renewed.ofType('error')).toEqual([])
    const sent = await restSend(t.app, b, conv, 'still here?')
    expect(await renewed.waitFor((f) => f.type === 'message.new')).toEqual({
      type: 'message.new',
      conversation_id: conv,
      message: expect.objectContaining({
        id: sent.id,
        seq: sent.seq,
        content: 'still here?',
        sender_id: b.id,
      }),
    })
  })

  it("refuses an `auth` frame with another user's token or a bad one, and the socket stays open", async () => {
    const { a, b } = await pair()
    const s = await socket(userSocketUrl(t.url), { token: a.token })
    s.send({ type: 'auth', access_token: b.token })
    expect(await s.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'unauthorized' })
    s.send({ type: 'auth', access_token: 'garbage' })
    await s.collect('error', 2)
    expect(s.ofType('error').map((f) => f.code)).toEqual(['unauthorized', 'unauthorized'])
    await s.settle()
    expect(s.closed).toBeUndefined()
  })
})

describe('WebSocket graceful shutdown', () => {
  let t: TestApp
  let a: TestUser
  let b: TestUser
  let conv: string

  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
    a = await registerUser(t.app, 'Ann')
    b = await registerUser(t.app, 'Bob')
    conv = await directChat(t.app, a, b)
  })
  afterAll(async () => t?.close())

  it('acks in-flight sends, refuses writes sent while draining, then closes every socket with 1001', async () => {
    const sender = await TestSocket.open(conversationSocketUrl(t.url, conv), { token: a.token })
    const peer = await TestSocket.open(userSocketUrl(t.url), { token: b.token })
    const url = (t.database as { url?: string }).url
    if (!url) throw new Error('this test needs the PostgreSQL driver')
    const pg = postgres(url, { max: 1, onnotice: () => {} })
    const drainStarted = whenCalled(Connection.prototype, 'drain')
    let stored: { content: string; seq: number; id: string }[] = []
    let beforeClose: Frame[] = []
    let lock: Awaited<ReturnType<typeof lockConversations>> | undefined
    try {
      // Hold the conversation lock so the sends are certainly still in flight when shutdown starts.
      lock = await lockConversations(url, [conv])
      for (const i of [1, 2, 3])
        sender.send({ type: 'message.send', content: `m${i}`, client_msg_id: `g${i}` })
      await sender.settle()
      const inFlight = sender.frames.length
      const closing = t.app.close()
      // Draining has begun (every socket refuses writes from now); frames sent now reach the
      // server in a later turn, so these two are certainly sent during shutdown.
      await drainStarted
      sender.send({ type: 'message.send', content: 'late', client_msg_id: 'late' })
      sender.send({ type: 'read', seq: 1 })
      // A ping is still answered (only writes are refused); its pong follows both answers.
      await sender.settle()
      // Refused at once, while the earlier sends still wait on the lock and the socket is open.
      beforeClose = sender.frames.slice(inFlight)
      expect(sender.closed).toBeUndefined()
      await lock.release()
      await closing
      stored = (
        await pg`select id, seq, content from messages where conversation_id = ${conv} order by seq`
      ).map((r) => ({ id: r.id as string, seq: Number(r.seq), content: r.content as string }))
    } finally {
      drainStarted.restore()
      // Should an assertion above fail, let the held sends (and so the shutdown) finish.
      await lock?.release()
      await pg.end()
    }
    const refusal = {
      type: 'error',
      code: 'unavailable',
      message: expect.any(String),
    }
    expect(beforeClose).toEqual([
      { ...refusal, client_msg_id: 'late' },
      refusal, // a read has no client_msg_id to echo
      { type: 'pong' },
    ])
    expect(await sender.waitClose()).toMatchObject({ code: 1001 })
    expect(await peer.waitClose()).toMatchObject({ code: 1001 })
    // Every send that got in before shutdown is acked before the close frame, and stored as acked.
    expect(stored.map((m) => m.content)).toEqual(['m1', 'm2', 'm3'])
    const acks = sender.ofType('message.ack')
    expect(acks.map((f) => f.client_msg_id)).toEqual(['g1', 'g2', 'g3'])
    expect(acks.map((f) => f.message)).toEqual(
      stored.map((m) => expect.objectContaining({ id: m.id, seq: m.seq, content: m.content })),
    )
    // The refused write left no trace: nothing stored, acked or broadcast.
    expect(sender.frames.filter((f) => f.client_msg_id === 'late')).toEqual([
      { ...refusal, client_msg_id: 'late' },
    ])
    expect(peer.ofType('message.new').map((f) => f.message)).toEqual(
      stored.map((m) =>
        expect.objectContaining({ id: m.id, seq: m.seq, content: m.content, sender_id: a.id }),
      ),
    )
  })
})

/** Waits until the socket has answered `n` server pings (the heartbeat is alive). */
function pings(s: TestSocket, n: number, timeoutMs = 5000): Promise<void> {
  return new Promise((resolve, reject) => {
    let seen = 0
    const timer = setTimeout(
      () => reject(new Error(`only ${seen}/${n} pings within ${timeoutMs} ms`)),
      timeoutMs,
    )
    s.ws.on('ping', () => {
      if (++seen < n) return
      clearTimeout(timer)
      resolve()
    })
  })
}

/**
 * Resolves when `obj[method]` is first called (the original still runs, and its effects are in
 * place by then); `restore` puts the method back.
 */
function whenCalled<T extends object, K extends keyof T & string>(obj: T, method: K) {
  const original = obj[method] as (...args: unknown[]) => unknown
  let called = () => {}
  const promise = new Promise<void>((resolve) => {
    called = resolve
  })
  obj[method] = function (this: unknown, ...args: unknown[]) {
    const result = original.apply(this, args)
    called()
    return result
  } as T[K]
  return Object.assign(promise, {
    restore: () => {
      obj[method] = original as T[K]
    },
  })
}
