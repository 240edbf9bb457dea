import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import {
  conversationSocketUrl,
  directChat,
  range,
  restSend,
  TestSocket,
  userSocketUrl,
} from '../helpers/ws-client.js'

/**
 * Resume: a client that was away gets every message after its cursor exactly once, in order,
 * then live ones, also while another member keeps sending during the replay.
 */
describe('WebSocket resume', () => {
  let t: TestApp
  const open: TestSocket[] = []
  // More than two pages of the replay (100 a page), so the replay spans several reads.
  const HISTORY = 250
  // Sent while the replay runs: half over REST, half over a socket.
  const LIVE = 40

  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
  })
  afterEach(() => {
    for (const s of open.splice(0)) s.close()
  })
  afterAll(async () => t?.close())

  const track = async (p: Promise<TestSocket>) => {
    const s = await p
    open.push(s)
    return s
  }

  /** A direct conversation with `HISTORY` messages from Bob already stored. */
  const withHistory = async () => {
    const a = await registerUser(t.app, 'Ann')
    const b = await registerUser(t.app, 'Bob')
    const conv = await directChat(t.app, a, b)
    await Promise.all(range(1, HISTORY).map((i) => t.services.messages.send(b.id, conv, `old ${i}`)))
    return { a, b, conv }
  }

  /**
   * Bob sends `LIVE` messages, one at a time on each path (REST and his socket) but both paths at
   * once. Resolves `started` after the first few commits, `done` when all are acked.
   */
  const keepSending = async (b: TestUser, conv: string) => {
    const sock = await track(TestSocket.open(conversationSocketUrl(t.url, conv), { token: b.token }))
    const overRest = async () => {
      for (const i of range(1, LIVE / 2)) await restSend(t.app, b, conv, `rest ${i}`)
    }
    const overSocket = async () => {
      for (const i of range(1, LIVE / 2)) {
        sock.send({ type: 'message.send', content: `ws ${i}`, client_msg_id: `live-${i}` })
        await sock.waitFor((f) => f.type === 'message.ack' && f.client_msg_id === `live-${i}`)
      }
    }
    const done = Promise.all([overRest(), overSocket()])
    const started = sock.collect('message.ack', 3)
    return { started, done }
  }

  /** Everything from `from` to `to`, each once and in order, then nothing more. */
  const expectExactly = async (s: TestSocket, conv: string, from: number, to: number) => {
    await s.collect('message.new', to - from + 1, 20_000, (f) => f.conversation_id === conv)
    await s.settle()
    expect(s.seqs(conv)).toEqual(range(from, to))
  }

  it('replays after ?since_seq=N on the conversation socket while another member keeps sending', async () => {
    const { a, b, conv } = await withHistory()
    const sending = await keepSending(b, conv)
    await sending.started
    const url = conversationSocketUrl(t.url, conv, '?since_seq=100')
    const resumed = await track(TestSocket.open(url, { token: a.token }))
    await sending.done
    await expectExactly(resumed, conv, 101, HISTORY + LIVE)
    // Then live ones.
    await restSend(t.app, b, conv, 'after the replay')
    await expectExactly(resumed, conv, 101, HISTORY + LIVE + 1)
  })

  it('resumes across a reconnect without a gap or a duplicate', async () => {
    const { a, b, conv } = await withHistory()
    const first = await track(TestSocket.open(conversationSocketUrl(t.url, conv), { token: a.token }))
    const sending = await keepSending(b, conv)
    await first.collect('message.new', 5)
    first.close()
    await first.waitClose()
    const seen = first.seqs(conv)
    const last = seen.at(-1) ?? HISTORY
    const url = conversationSocketUrl(t.url, conv, `?since_seq=${last}`)
    const second = await track(TestSocket.open(url, { token: a.token }))
    await sending.done
    await expectExactly(second, conv, last + 1, HISTORY + LIVE)
    expect([...seen, ...second.seqs(conv)]).toEqual(range(HISTORY + 1, HISTORY + LIVE))
  })

  it('replays after `sync` on a user socket opened with ?resume=true, in order, while sending goes on', async () => {
    const { a, b, conv } = await withHistory()
    const sending = await keepSending(b, conv)
    await sending.started
    const s = await track(TestSocket.open(`${userSocketUrl(t.url)}?resume=true`, { token: a.token }))
    s.send({ type: 'sync', cursors: { [conv]: 100 } })
    await sending.done
    await expectExactly(s, conv, 101, HISTORY + LIVE)
    await restSend(t.app, b, conv, 'live')
    await expectExactly(s, conv, 101, HISTORY + LIVE + 1)
  })

  it('replays after `sync` on a plain user socket while sending goes on', async () => {
    const { a, b, conv } = await withHistory()
    const s = await track(TestSocket.open(userSocketUrl(t.url), { token: a.token }))
    s.send({ type: 'sync', cursors: { [conv]: 100 } })
    // The pong comes after the sync has moved the cursor back, so every live one is newer.
    await s.settle()
    const sending = await keepSending(b, conv)
    await sending.done
    await expectExactly(s, conv, 101, HISTORY + LIVE)
  })

  it('never repeats on a plain user socket whose sync raced live messages', async () => {
    const { a, b, conv } = await withHistory()
    const sending = await keepSending(b, conv)
    await sending.started
    const s = await track(TestSocket.open(userSocketUrl(t.url), { token: a.token }))
    s.send({ type: 'sync', cursors: { [conv]: 100 } })
    await sending.done
    const total = HISTORY + LIVE
    await s.collect('message.new', total - 100, 20_000)
    await s.settle()
    // Live messages that beat the sync come first; the older ones follow, each exactly once.
    expect([...s.seqs(conv)].sort((x, y) => x - y)).toEqual(range(101, total))
  })

  it('does not resend on `sync` what the socket already delivered', async () => {
    const a = await registerUser(t.app, 'Ann')
    const b = await registerUser(t.app, 'Bob')
    const conv = await directChat(t.app, a, b)
    const s = await track(TestSocket.open(userSocketUrl(t.url), { token: a.token }))
    for (const i of range(1, 5)) await restSend(t.app, b, conv, `m${i}`)
    await s.collect('message.new', 5)
    s.send({ type: 'sync', cursors: { [conv]: 2 } })
    s.send({ type: 'sync', cursors: { [conv]: 0 } })
    await restSend(t.app, b, conv, 'm6')
    await expectExactly(s, conv, 1, 6)
  })

  it('answers `sync` for a conversation the user is not in with not_found', async () => {
    const a = await registerUser(t.app, 'Ann')
    const [b, c] = [await registerUser(t.app, 'Bob'), await registerUser(t.app, 'Cid')]
    const foreign = await directChat(t.app, b, c)
    const s = await track(TestSocket.open(userSocketUrl(t.url), { token: a.token }))
    s.send({ type: 'sync', cursors: { [foreign]: 0 } })
    expect(await s.waitFor((f) => f.type === 'error')).toMatchObject({ code: 'not_found' })
    await restSend(t.app, b, foreign, 'private')
    await s.settle()
    expect(s.ofType('message.new')).toEqual([])
  })

  it('clamps a since_seq past the end, so the next messages still arrive', async () => {
    const a = await registerUser(t.app, 'Ann')
    const b = await registerUser(t.app, 'Bob')
    const conv = await directChat(t.app, a, b)
    await restSend(t.app, b, conv, 'one')
    const url = conversationSocketUrl(t.url, conv, '?since_seq=1000')
    const s = await track(TestSocket.open(url, { token: a.token }))
    await restSend(t.app, b, conv, 'two')
    await expectExactly(s, conv, 2, 2)
  })
})
