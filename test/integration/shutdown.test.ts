import type { ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { Agent, request as httpRequest } from 'node:http'
import { connect, type Socket } from 'node:net'
import postgres from 'postgres'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { createTestDatabase, lockConversations } from '../helpers/pg.js'
import { startServer } from '../helpers/server-process.js'
import { conversationSocketUrl, directChat, TestSocket } from '../helpers/ws-client.js'

/** A raw TCP connection, to hold what a well-behaved client never would. */
class RawConnection {
  received = ''
  readonly closed: Promise<void>
  private constructor(readonly socket: Socket) {
    socket.on('error', () => {})
    socket.on('data', (d: Buffer) => {
      this.received += d.toString('latin1')
    })
    this.closed = once(socket, 'close').then(() => undefined)
  }

  static async open(base: string): Promise<RawConnection> {
    const { hostname, port } = new URL(base)
    const socket = connect(Number(port), hostname)
    await once(socket, 'connect')
    return new RawConnection(socket)
  }

  /** Sends a WebSocket upgrade request for `path`. */
  upgrade(path: string, headers: Record<string, string> = {}): void {
    const lines = [
      `GET ${path} HTTP/1.1`,
      'Host: 127.0.0.1',
      'Connection: Upgrade',
      'Upgrade: websocket',
      'Sec-WebSocket-Version: 13',
      `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ]
    this.socket.write(`${lines.join('\r\n')}\r\n\r\n`)
  }

  async waitFor(text: string, timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs
    while (!this.received.includes(text)) {
      if (Date.now() > deadline || this.socket.destroyed)
        throw new Error(`no ${JSON.stringify(text)} within ${timeoutMs} ms: ${this.received}`)
      await Promise.race([once(this.socket, 'data'), this.closed, until(deadline)])
    }
  }

  /** Whether the server ended the connection within `ms`. */
  closedWithin(ms: number): Promise<boolean> {
    return Promise.race([this.closed.then(() => true), until(Date.now() + ms).then(() => false)])
  }
}

function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true), until(Date.now() + ms).then(() => false)])
}

function until(deadline: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now())).unref())
}

describe('an upgrade refused while the server shuts down', () => {
  let t: TestApp
  let a: TestUser
  let conv: string

  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
    a = await registerUser(t.app, 'Ann')
    conv = await directChat(t.app, a, await registerUser(t.app, 'Bob'))
  })
  afterAll(async () => t?.close())

  it('is answered 503 and its connection ended', async () => {
    const url = (t.database as { url?: string }).url
    if (!url) throw new Error('this test needs the PostgreSQL driver')
    const sender = await TestSocket.open(conversationSocketUrl(t.url, conv), { token: a.token })
    // A send held by the conversation lock keeps the shutdown draining while the upgrade arrives.
    const lock = await lockConversations(url, [conv])
    let closing: Promise<void> | undefined
    try {
      sender.send({ type: 'message.send', content: 'held', client_msg_id: 'held' })
      await sender.settle()
      const raw = await RawConnection.open(t.url)
      closing = t.app.close()
      raw.upgrade('/api/v1/chat/ws', { Authorization: `Bearer ${a.token}` })
      await raw.waitFor('\r\n\r\n')
      expect(raw.received).toMatch(/^HTTP\/1\.1 503 /)
      const ended = await raw.closedWithin(2000)
      raw.socket.destroy()
      expect(ended).toBe(true)
    } finally {
      await lock.release()
      // A connection left open holds the close forever: fail here rather than time out.
      if (closing) expect(await settlesWithin(closing, 5000)).toBe(true)
    }
  })
})

describe('REST requests in flight on keep-alive connections when the server shuts down', () => {
  let t: TestApp
  let a: TestUser
  let conv: string

  beforeAll(async () => {
    // The default keep-alive timeout (72 s): the close must not wait it out.
    t = await startTestApp()
    await t.listen()
    a = await registerUser(t.app, 'Ann')
    conv = await directChat(t.app, a, await registerUser(t.app, 'Bob'))
  })
  afterAll(async () => t?.close())

  it('are each answered in full with Connection: close, and the close does not wait for keep-alive', async () => {
    const url = (t.database as { url?: string }).url
    if (!url) throw new Error('this test needs the PostgreSQL driver')
    const inFlight = 8
    const agent = new Agent({ keepAlive: true, maxSockets: inFlight })
    const send = (content: string) =>
      post(agent, `${t.url}/api/v1/chat/conversations/${conv}/messages`, a.token, { content })
    // Every connection has answered once already and is kept alive for more.
    const warm = await Promise.all(Array.from({ length: inFlight }, (_, i) => send(`warm ${i}`)))
    expect(warm.map((r) => [r.status, r.connection])).toEqual(warm.map(() => [201, 'keep-alive']))

    const pg = postgres(url, { max: 1, onnotice: () => {} })
    // The conversation lock holds the sends in the database until the close has begun.
    const lock = await lockConversations(url, [conv])
    let closing: Promise<void> | undefined
    try {
      let received = 0
      const allReceived = new Promise<void>((resolve) => {
        t.app.server.on('request', () => {
          if (++received === inFlight) resolve()
        })
      })
      const sends = Array.from({ length: inFlight }, (_, i) =>
        send(`in flight ${i}`).catch((err: Error) => err),
      )
      await allReceived
      closing = t.app.close()
      const started = Date.now()
      await lock.release()
      const results = await Promise.all(sends)
      expect(results.filter((r) => r instanceof Error)).toEqual([])
      for (const r of results as Response[]) {
        expect(r.status).toBe(201)
        expect(r.connection).toBe('close')
        expect(JSON.parse(r.body)).toMatchObject({ content: expect.stringMatching(/^in flight /) })
      }
      expect(await settlesWithin(closing, 5000)).toBe(true)
      expect(Date.now() - started).toBeLessThan(5000)
      const stored = await pg`select count(*)::int as n from messages where conversation_id = ${conv}`
      expect(stored[0]?.n).toBe(2 * inFlight)
    } finally {
      await lock.release()
      if (closing) await settlesWithin(closing, 5000)
      agent.destroy()
      await pg.end()
    }
  })
})

interface Response {
  status: number
  connection: string | undefined
  body: string
}

/** A JSON POST through `agent` (node:http: fetch hides the Connection header). */
function post(agent: Agent, url: string, token: string, body: object): Promise<Response> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      url,
      {
        method: 'POST',
        agent,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      },
      (res) => {
        let text = ''
        res.setEncoding('utf8')
        res.on('data', (c: string) => {
          text += c
        })
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, body: text }),
        )
        res.on('error', reject)
      },
    )
    req.on('error', reject)
    req.end(JSON.stringify(body))
  })
}

describe('the server process on SIGTERM', () => {
  const children: ChildProcess[] = []
  const held: RawConnection[] = []
  afterEach(() => {
    for (const c of held.splice(0)) c.socket.destroy()
    for (const c of children.splice(0)) c.kill('SIGKILL')
  })

  it('exits within SHUTDOWN_TIMEOUT_MS, whatever connections are still open', async () => {
    const deadlineMs = 1500
    const db = await createTestDatabase()
    try {
      const server = await startServer({
        DATABASE_URL: db.url,
        SHUTDOWN_TIMEOUT_MS: String(deadlineMs),
        // The request still arriving below must not be cut off by its own timeout first.
        HTTP_HEADERS_TIMEOUT_MS: '60000',
        HTTP_REQUEST_TIMEOUT_MS: '60000',
      })
      children.push(server.child)
      const token = await register(server.url)

      // A socket that completed the upgrade and then ignores everything, the close frame included.
      const deaf = await RawConnection.open(server.url)
      held.push(deaf)
      deaf.upgrade('/api/v1/chat/ws', { Authorization: `Bearer ${token}` })
      await deaf.waitFor('HTTP/1.1 101')
      // A request whose headers never finish.
      const slow = await RawConnection.open(server.url)
      held.push(slow)
      slow.socket.write('GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n')
      // And an upgrade refused before routing.
      const refused = await RawConnection.open(server.url)
      held.push(refused)
      refused.upgrade(`/api/v1/chat/ws/conversations/${'x'.repeat(101)}`)
      await refused.waitFor('\r\n\r\n')

      const started = Date.now()
      server.child.kill('SIGTERM')
      const exit = await Promise.race([
        once(server.child, 'exit').then(([code]) => code as number | null),
        until(started + deadlineMs + 5000).then(() => 'still running' as const),
      ])
      const tookMs = Date.now() - started
      expect(exit, server.output()).not.toBe('still running')
      expect(tookMs).toBeLessThan(deadlineMs + 3000)
      // The deadline ends the connections; the rest of the shutdown is orderly.
      expect(exit, server.output()).toBe(0)
      expect(server.output()).toContain('shutdown deadline passed')
      for (const c of [deaf, slow, refused]) expect(await c.closedWithin(1000)).toBe(true)
    } finally {
      for (const c of children.splice(0)) c.kill('SIGKILL')
      await db.drop()
    }
  })
})

async function register(base: string): Promise<string> {
  const res = await fetch(`${base}/api/v1/auth/register`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      email: `shutdown.${Date.now()}@example.com`,
      password: 'Sup3r-secret!',
      full_name: 'Shut Down',
    }),
  })
  if (res.status !== 201) throw new Error(`register: ${res.status} ${await res.text()}`)
  return ((await res.json()) as { access_token: string }).access_token
}
