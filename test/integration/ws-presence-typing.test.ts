import { describe, expect, it } from 'vitest'
import { registerUser } from '../helpers/app.js'
import { useSocketApp } from '../helpers/socket-app.js'
import { eventually, history, type TestSocket } from '../helpers/ws-client.js'

const TYPING_TTL_MS = 300

const typingOf = (s: TestSocket) => s.ofType('typing').map((f) => f.state)

/** Ephemeral state: typing is relayed (never stored) and expires; presence follows open sockets. */
describe('WebSocket typing and presence', () => {
  const h = useSocketApp({ TYPING_TTL_MS: String(TYPING_TTL_MS), TYPING_RELAY_INTERVAL_MS: '200' })
  const presenceOf = (s: TestSocket, userId: string) =>
    s
      .ofType('presence')
      .filter((f) => f.user_id === userId)
      .map((f) => f.status)
  /** The server releases a socket when its close arrives; presence counts it until then. */
  const released = (userId: string, sockets: number) =>
    eventually(
      `presence to count ${sockets} socket(s) of user ${userId}`,
      async () => (await h.t.services.presence.connections(userId)) === sockets,
    )

  it('relays typing to the peers only, stores nothing, and sends stop by itself after TYPING_TTL_MS', async () => {
    const { a, b, conv } = await h.pair()
    const [aConv, aOther, bUser, bConv] = [
      await h.convSocket(a, conv),
      await h.userSocket(a),
      await h.userSocket(b),
      await h.convSocket(b, conv),
    ]
    const started = Date.now()
    aConv.send({ type: 'typing', state: 'start' })
    for (const s of [bUser, bConv]) {
      expect(await s.waitFor((f) => f.type === 'typing')).toEqual({
        type: 'typing',
        conversation_id: conv,
        user_id: a.id,
        state: 'start',
      })
    }
    // Nobody sent stop: the server does, once the TTL has run out.
    await bUser.waitFor((f) => f.type === 'typing' && f.state === 'stop', { timeoutMs: 5000 })
    expect(Date.now() - started).toBeGreaterThanOrEqual(TYPING_TTL_MS - 20)
    await Promise.all([aConv.settle(), aOther.settle(), bUser.settle(), bConv.settle()])
    expect(typingOf(bUser)).toEqual(['start', 'stop'])
    expect(typingOf(bConv)).toEqual(['start', 'stop'])
    // The typist's own sockets hear nothing of it, and nothing was stored.
    expect([...typingOf(aConv), ...typingOf(aOther)]).toEqual([])
    expect(await history(h.t.app, a, conv)).toEqual([])
  })

  it('relays an explicit stop at once, a start again once the interval has passed, and a stop when the typist disconnects', async () => {
    const { a, b, conv } = await h.pair()
    const [aUser, bConv] = [await h.userSocket(a), await h.convSocket(b, conv)]
    aUser.send({ type: 'typing', conversation_id: conv, state: 'start' })
    aUser.send({ type: 'typing', conversation_id: conv, state: 'stop' })
    await bConv.collect('typing', 2)
    expect(typingOf(bConv)).toEqual(['start', 'stop'])
    aUser.send({ type: 'typing', conversation_id: conv, state: 'start' })
    await bConv.collect('typing', 3)
    aUser.close()
    await bConv.collect('typing', 4)
    expect(typingOf(bConv)).toEqual(['start', 'stop', 'start', 'stop'])
  })

  it('requires conversation_id for typing on the user socket', async () => {
    const { a } = await h.pair()
    const s = await h.userSocket(a)
    s.send({ type: 'typing', state: 'start' })
    expect(await s.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'validation_failed' })
  })

  it('shows a user online while at least one of their sockets is open, to peers only', async () => {
    const { a, b, conv } = await h.pair()
    const stranger = await registerUser(h.t.app, 'Eve')
    const [bUser, eve] = [await h.userSocket(b), await h.userSocket(stranger)]
    const first = await h.userSocket(a)
    await bUser.waitFor((f) => f.type === 'presence' && f.user_id === a.id && f.status === 'online')
    const second = await h.convSocket(a, conv)
    first.close()
    await released(a.id, 1)
    await bUser.settle()
    // A second socket announces nothing; closing one of two takes nobody offline.
    expect(presenceOf(bUser, a.id)).toEqual(['online'])
    second.close()
    await bUser.waitFor((f) => f.type === 'presence' && f.user_id === a.id && f.status === 'offline')
    await Promise.all([bUser.settle(), eve.settle()])
    expect(presenceOf(bUser, a.id)).toEqual(['online', 'offline'])
    // Someone sharing no conversation with A hears nothing about A.
    expect(presenceOf(eve, a.id)).toEqual([])
  })

  it('tells a socket who among its peers is already online when it opens', async () => {
    const { a, b, conv } = await h.pair()
    await h.userSocket(a)
    await released(a.id, 1)
    const bConv = await h.convSocket(b, conv)
    expect(await bConv.waitFor((f) => f.type === 'presence')).toEqual({
      type: 'presence',
      user_id: a.id,
      status: 'online',
    })
  })
})

describe('WebSocket typing under a burst', () => {
  // The defaults: TYPING_TTL_MS 6 s, TYPING_RELAY_INTERVAL_MS 3 s.
  const h = useSocketApp()

  it('relays 1,000 alternating start/stop frames as one start and one stop', async () => {
    const { a, b, conv } = await h.pair()
    const [aConv, bUser, bConv] = [
      await h.convSocket(a, conv),
      await h.userSocket(b),
      await h.convSocket(b, conv),
    ]
    for (let i = 0; i < 500; i++) {
      aConv.send({ type: 'typing', state: 'start' })
      aConv.send({ type: 'typing', state: 'stop' })
    }
    // Every frame of the burst is handled before the pong, and relayed before the peers' pongs.
    await aConv.settle()
    await Promise.all([bUser.settle(), bConv.settle()])
    expect(typingOf(bUser)).toEqual(['start', 'stop'])
    expect(typingOf(bConv)).toEqual(['start', 'stop'])
  })
})
