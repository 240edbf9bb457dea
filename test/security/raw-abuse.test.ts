import { randomBytes } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { eventually, TestSocket } from '../helpers/ws-client.js'
import { fuzzRuns } from './arbitraries.js'

/** A raw TCP client that records what it receives and when the server hung up. */
class RawClient {
  received = Buffer.alloc(0)
  readonly closed: Promise<number>
  private constructor(
    readonly socket: Socket,
    readonly startedAt: number,
  ) {
    socket.on('data', (d) => {
      this.received = Buffer.concat([this.received, d])
    })
    socket.on('error', () => {})
    this.closed = new Promise((resolve) => socket.once('close', () => resolve(Date.now() - startedAt)))
  }

  static open(url: string): Promise<RawClient> {
    const { hostname, port } = new URL(url)
    return new Promise((resolve, reject) => {
      const socket = connect(Number(port), hostname, () => resolve(new RawClient(socket, Date.now())))
      socket.once('error', reject)
    })
  }

  /** When the server hung up, in ms since connecting; fails after `timeoutMs` instead of hanging. */
  closedWithin(timeoutMs: number): Promise<number> {
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`still connected after ${timeoutMs} ms`)), timeoutMs)
    })
    return Promise.race([this.closed, deadline]).finally(() => clearTimeout(timer))
  }

  get text(): string {
    return this.received.toString('latin1')
  }

  /** Resolves once `pattern` has arrived; fails after `timeoutMs`, also when nothing more arrives. */
  waitFor(pattern: string, timeoutMs = 5000): Promise<void> {
    if (this.text.includes(pattern)) return Promise.resolve()
    return new Promise((resolve, reject) => {
      const stop = () => {
        clearTimeout(timer)
        this.socket.off('data', onData).off('close', onClose)
      }
      const fail = (why: string) => {
        stop()
        reject(new Error(`no ${JSON.stringify(pattern)} ${why}: ${this.text}`))
      }
      const timer = setTimeout(() => fail(`within ${timeoutMs} ms`), timeoutMs)
      // Listeners run in order: this one after the constructor's, which appended the data.
      const onData = () => {
        if (!this.text.includes(pattern)) return
        stop()
        resolve()
      }
      const onClose = () => fail('before the server closed the connection')
      this.socket.on('data', onData).once('close', onClose)
    })
  }

  /** Writes `text` one byte every `everyMs` until the server closes the connection. */
  trickle(text: string, everyMs: number): void {
    let i = 0
    const timer = setInterval(() => {
      if (this.socket.destroyed) return clearInterval(timer)
      this.socket.write(text[i % text.length] as string)
      i++
    }, everyMs)
    this.socket.once('close', () => clearInterval(timer))
  }
}

/** A masked client frame, written by hand so it can carry what the `ws` client refuses to send. */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4)
  const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)))
  const len = payload.length
  const header =
    len < 126
      ? Buffer.from([0x80 | opcode, 0x80 | len])
      : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff])
  return Buffer.concat([header, mask, masked])
}

const upgradeRequest = (url: string, token: string) =>
  [
    `GET /api/v1/chat/ws HTTP/1.1`,
    `Host: ${new URL(url).host}`,
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    'Sec-WebSocket-Version: 13',
    `Authorization: Bearer ${token}`,
    '',
    '',
  ].join('\r\n')

const HEADERS_TIMEOUT_MS = 500
const REQUEST_TIMEOUT_MS = 1000
const KEEP_ALIVE_TIMEOUT_MS = 300
const HEARTBEAT_MS = 200
/** Node enforces header and request deadlines on a timer; the app checks at least every 250 ms here. */
const SLACK_MS = 2500

describe('raw socket abuse', () => {
  let t: TestApp
  let u: TestUser
  beforeAll(async () => {
    t = await startTestApp({
      env: {
        HTTP_HEADERS_TIMEOUT_MS: String(HEADERS_TIMEOUT_MS),
        HTTP_REQUEST_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        HTTP_IDLE_TIMEOUT_MS: String(REQUEST_TIMEOUT_MS),
        HTTP_KEEP_ALIVE_TIMEOUT_MS: String(KEEP_ALIVE_TIMEOUT_MS),
        WS_HEARTBEAT_MS: String(HEARTBEAT_MS),
        WS_MAX_VIOLATIONS: '1000',
      },
    })
    await t.listen()
    u = await registerUser(t.app, 'Abuser')
  })
  afterAll(async () => t?.close())

  const healthy = async () => {
    const res = await fetch(`${t.url}/health`)
    expect(res.status).toBe(200)
  }

  it('answers binary frames, whatever their bytes, with an error frame and keeps the socket', async () => {
    const s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: u.token })
    try {
      await s.waitFor((f) => f.type === 'ready')
      await fc.assert(
        fc.asyncProperty(fc.uint8Array({ maxLength: 2000 }), async (bytes) => {
          const from = s.frames.length
          s.sendRaw(Buffer.from(bytes), { binary: true })
          expect((await s.waitFor((f) => f.type === 'error', { from })).code).toBe('invalid_frame')
        }),
        fuzzRuns(30),
      )
      // A JSON document in a binary frame is refused too: text frames only.
      const from = s.frames.length
      s.sendRaw(Buffer.from(JSON.stringify({ type: 'ping' })), { binary: true })
      expect((await s.waitFor((f) => f.type === 'error', { from })).code).toBe('invalid_frame')
      await s.settle()
      expect(s.closed).toBeUndefined()
    } finally {
      s.close()
    }
  })

  it('closes with 1009 on a 1 MiB frame, text or binary, or on fragments adding up past the limit', async () => {
    const sends: ((s: TestSocket) => void)[] = [
      (s) => s.sendRaw('x'.repeat(1 << 20)),
      (s) => s.sendRaw(randomBytes(1 << 20), { binary: true }),
      (s) => {
        for (let i = 0; i < 20; i++) s.sendRaw('x'.repeat(1024), { fin: i === 19 })
      },
    ]
    for (const send of sends) {
      const s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: u.token })
      await s.waitFor((f) => f.type === 'ready')
      send(s)
      expect((await s.waitClose()).code).toBe(1009)
    }
    await healthy()
  })

  it('closes with 1007 on a text frame that is not UTF-8', async () => {
    const c = await RawClient.open(t.url)
    c.socket.write(upgradeRequest(t.url, u.token))
    await c.waitFor('\r\n\r\n')
    expect(c.text).toMatch(/^HTTP\/1\.1 101 /)
    c.socket.write(clientFrame(0x1, Buffer.from([0x7b, 0xff, 0xfe, 0xc3, 0x28, 0x7d])))
    await c.closed
    // The close frame the server sent: opcode 8, status 1007 (invalid frame payload data).
    const close = c.received.subarray(c.received.lastIndexOf(Buffer.from([0x88])))
    expect(close.readUInt16BE(2)).toBe(1007)
    await healthy()
  })

  it('cuts off a client that sends its headers slowly (slow-loris) with 408, in bounded time', async () => {
    const attackers = await Promise.all([RawClient.open(t.url), RawClient.open(t.url)])
    const [upgrade, plain] = attackers as [RawClient, RawClient]
    upgrade.trickle(
      `GET /api/v1/chat/ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nX-Pad: ${'a'.repeat(10_000)}`,
      50,
    )
    plain.trickle(`GET /health HTTP/1.1\r\nHost: x\r\nX-Pad: ${'a'.repeat(10_000)}`, 50)
    // The server keeps serving everyone else meanwhile.
    await healthy()
    for (const c of attackers) {
      const after = await c.closedWithin(HEADERS_TIMEOUT_MS + SLACK_MS)
      expect(after).toBeGreaterThanOrEqual(HEADERS_TIMEOUT_MS - 50)
      expect(after).toBeLessThan(HEADERS_TIMEOUT_MS + SLACK_MS)
      expect(c.text).toMatch(/^HTTP\/1\.1 408 /)
    }
  })

  it('cuts off a client that sends its body slowly, and one that connects and says nothing', async () => {
    const slowBody = await RawClient.open(t.url)
    slowBody.socket.write(
      'POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\n\r\n',
    )
    slowBody.trickle(' ', 50)
    const silent = await RawClient.open(t.url)
    const bound = REQUEST_TIMEOUT_MS + SLACK_MS
    const [bodyAfter, silentAfter] = await Promise.all([
      slowBody.closedWithin(bound),
      silent.closedWithin(bound),
    ])
    expect(bodyAfter).toBeLessThan(REQUEST_TIMEOUT_MS + SLACK_MS)
    expect(slowBody.text).toMatch(/^HTTP\/1\.1 408 /)
    expect(silentAfter).toBeLessThan(REQUEST_TIMEOUT_MS + SLACK_MS)
    await healthy()
  })

  // Node adds a second to keepAliveTimeout (so a client reusing the connection at the deadline is not cut).
  it('closes an idle keep-alive connection after HTTP_KEEP_ALIVE_TIMEOUT_MS', async () => {
    const c = await RawClient.open(t.url)
    c.socket.write('GET /health HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n')
    await c.waitFor('"status":"ok"')
    const answeredAt = Date.now() - c.startedAt
    const after = await c.closedWithin(KEEP_ALIVE_TIMEOUT_MS + SLACK_MS)
    expect(after - answeredAt).toBeLessThan(KEEP_ALIVE_TIMEOUT_MS + SLACK_MS)
  })

  it('leaves an open WebSocket alone past every HTTP deadline', async () => {
    const s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: u.token })
    try {
      await s.waitFor((f) => f.type === 'ready')
      // Nothing to wait for here: the point is that nothing happens while the deadlines pass.
      await new Promise((resolve) => setTimeout(resolve, REQUEST_TIMEOUT_MS * 2 + 500))
      await s.settle()
      expect(s.closed).toBeUndefined()
    } finally {
      s.close()
    }
  })

  it('terminates a half-open connection (no pong) by heartbeat and releases its slot', async () => {
    const c = await RawClient.open(t.url)
    c.socket.write(upgradeRequest(t.url, u.token))
    await c.waitFor('\r\n\r\n')
    expect(c.text).toMatch(/^HTTP\/1\.1 101 /)
    await eventually(
      'the upgraded socket to be attached (presence counts 1)',
      async () => (await t.services.presence.connections(u.id)) === 1,
    )
    // The client never answers the server's pings (nor anything else).
    const after = await c.closedWithin(HEARTBEAT_MS * 3 + SLACK_MS)
    expect(after).toBeLessThan(HEARTBEAT_MS * 3 + SLACK_MS)
    // A ping frame (opcode 9) reached the client before it was dropped.
    expect(c.received.includes(Buffer.from([0x89, 0x00]))).toBe(true)
    await eventually(
      'the terminated socket to release its slot (presence counts 0)',
      async () => (await t.services.presence.connections(u.id)) === 0,
    )
  })
})

describe('1,000 connection attempts from one user', () => {
  let t: TestApp
  let u: TestUser
  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
    u = await registerUser(t.app, 'Crowd')
  })
  afterAll(async () => t?.close())

  it('accepts WS_MAX_CONNECTIONS_PER_USER (20), refuses the rest with 429, and memory stays bounded', async () => {
    const limit = t.services.config.ws.maxConnectionsPerUser
    expect(limit).toBe(20)
    const rssBefore = process.memoryUsage().rss
    const attempts = await Promise.allSettled(
      Array.from({ length: 1000 }, () => TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: u.token })),
    )
    const opened = attempts.flatMap((a) => (a.status === 'fulfilled' ? [a.value] : []))
    const statuses = attempts.flatMap((a) =>
      a.status === 'rejected' ? [(a.reason as { status?: number }).status] : [],
    )
    expect(opened).toHaveLength(limit)
    expect(statuses).toHaveLength(1000 - limit)
    expect(new Set(statuses)).toEqual(new Set([429]))
    const rssPeak = process.memoryUsage().rss
    // Loose: 1,000 refused upgrades (client and server in this process) cost far less than this.
    expect(rssPeak - rssBefore).toBeLessThan(200 * 1024 * 1024)

    // The accepted sockets work, and closing them gives the slots back.
    for (const s of opened) await s.waitFor((f) => f.type === 'ready')
    for (const s of opened) s.close()
    await Promise.all(opened.map((s) => s.waitClose()))
    await eventually(
      'every closed socket to release its slot (presence counts 0)',
      async () => (await t.services.presence.connections(u.id)) === 0,
    )
    const again = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: u.token })
    await again.waitFor((f) => f.type === 'ready')
    again.close()
    expect((await fetch(`${t.url}/health`)).status).toBe(200)
  })
})
