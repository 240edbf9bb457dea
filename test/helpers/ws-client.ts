import { once } from 'node:events'
import type { IncomingHttpHeaders } from 'node:http'
import { createServer } from 'node:net'
import type { FastifyInstance } from 'fastify'
import { SignJWT } from 'jose'
import WebSocket from 'ws'
import { TEST_KID, TEST_SECRET, type TestUser } from './app.js'
import { frameContract, SCHEMA_REFUSALS } from './frame-contract.js'

export interface Frame {
  type: string
  [key: string]: unknown
}

export interface OpenOptions {
  token?: string
  headers?: Record<string, string>
  protocols?: string[]
  /** false: the client never answers server pings (heartbeat tests). */
  autoPong?: boolean
}

/**
 * A `ws` client that records every frame, so tests wait on events (`next`, `waitFor`) with a
 * deadline instead of sleeping.
 */
export class TestSocket {
  readonly frames: Frame[] = []
  /** Frames sent that docs/asyncapi.yaml refuses, and the server's schema refusals (`error` frames). */
  private docRefused = 0
  private serverRefused = 0
  private waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void; from: number }[] = []
  closed: { code: number; reason: string } | undefined
  private closeWaiters: ((c: { code: number; reason: string }) => void)[] = []

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Frame
      frameContract.checkServerFrame(frame)
      if (frame.type === 'error' && SCHEMA_REFUSALS.has(String(frame.code))) this.serverRefused++
      this.frames.push(frame)
      this.waiters = this.waiters.filter((w) => {
        if (w.pred(frame)) {
          w.resolve(frame)
          return false
        }
        return true
      })
    })
    ws.on('close', (code, reason) => {
      this.closed = { code, reason: reason.toString() }
      frameContract.settle({
        docRefused: this.docRefused,
        serverRefused: this.serverRefused,
        closeCode: code,
      })
      for (const w of this.closeWaiters.splice(0)) w(this.closed)
    })
    // A socket the server drops may also report an error; `closed` records the outcome.
    ws.on('error', () => {})
  }

  /** Opens a socket; rejects with `{status, body}` when the server refuses the upgrade. */
  static open(url: string, opts: OpenOptions = {}) {
    const headers = { ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}), ...opts.headers }
    const ws = new WebSocket(url.replace(/^http/, 'ws'), opts.protocols ?? [], {
      headers,
      autoPong: opts.autoPong ?? true,
    })
    const socket = new TestSocket(ws)
    return new Promise<TestSocket>((resolve, reject) => {
      ws.once('open', () => resolve(socket))
      ws.once('unexpected-response', (_req, res) => {
        let body = ''
        res.on('data', (c: Buffer) => {
          body += c.toString()
        })
        res.on('end', () =>
          reject(
            Object.assign(new Error(`refused: ${res.statusCode}`), {
              status: res.statusCode,
              body,
              headers: res.headers,
            }),
          ),
        )
      })
      ws.once('error', reject)
    })
  }

  /** The HTTP status the server refused the upgrade with; fails the test if it was accepted. */
  static async refusal(
    url: string,
    opts: OpenOptions = {},
  ): Promise<{ status: number; body: string; headers: IncomingHttpHeaders }> {
    try {
      const s = await TestSocket.open(url, opts)
      s.close()
    } catch (err) {
      const e = err as { status?: number; body?: string; headers?: IncomingHttpHeaders }
      if (e.status !== undefined) return { status: e.status, body: e.body ?? '', headers: e.headers ?? {} }
      throw err
    }
    throw new Error(`expected the upgrade to ${url} to be refused, but it was accepted`)
  }

  send(frame: unknown): void {
    const text = typeof frame === 'string' ? frame : JSON.stringify(frame)
    if (!frameContract.allowsClientFrame(text)) this.docRefused++
    this.ws.send(text)
  }

  /** Sends bytes as they are (binary, fragmented): the document declares JSON text frames only. */
  sendRaw(data: string | Buffer, options: { binary?: boolean; fin?: boolean } = {}): void {
    const text = !options.binary && typeof data === 'string' && options.fin !== false
    if (!text || !frameContract.allowsClientFrame(data)) this.docRefused++
    this.ws.send(data, options)
  }

  /** The first frame (already received or future) matching `pred`, counting from index `from`. */
  waitFor(pred: (f: Frame) => boolean, { timeoutMs = 5000, from = 0 } = {}): Promise<Frame> {
    const found = this.frames.slice(from).find(pred)
    if (found) return Promise.resolve(found)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w.resolve !== done)
        reject(
          new Error(
            `no matching frame within ${timeoutMs} ms; got: ${JSON.stringify(this.frames.slice(-5))}`,
          ),
        )
      }, timeoutMs)
      const done = (f: Frame) => {
        clearTimeout(timer)
        resolve(f)
      }
      this.waiters.push({ pred, resolve: done, from })
    })
  }

  /** Waits until `n` frames matching `type` (and `pred`) have arrived and returns them. */
  async collect(type: string, n: number, timeoutMs = 10000, pred: (f: Frame) => boolean = () => true) {
    const match = (f: Frame) => f.type === type && pred(f)
    const deadline = Date.now() + timeoutMs
    for (;;) {
      const got = this.frames.filter(match)
      if (got.length >= n) return got
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`only ${got.length}/${n} ${type} frames within ${timeoutMs} ms`)
      await this.waitFor(match, { timeoutMs: left, from: this.frames.length }).catch(() => undefined)
    }
  }

  /** Frames of one type received so far. */
  ofType(type: string): Frame[] {
    return this.frames.filter((f) => f.type === type)
  }

  /** The seqs of `message.new` frames received so far, in arrival order (optionally for one conversation). */
  seqs(conversationId?: string): number[] {
    return this.ofType('message.new')
      .filter((f) => conversationId === undefined || f.conversation_id === conversationId)
      .map((f) => (f.message as { seq: number }).seq)
  }

  waitClose(timeoutMs = 5000): Promise<{ code: number; reason: string }> {
    if (this.closed) return Promise.resolve(this.closed)
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`socket not closed within ${timeoutMs} ms`)), timeoutMs)
      this.closeWaiters.push((c) => {
        clearTimeout(timer)
        resolve(c)
      })
    })
  }

  /** Round-trips a ping, so every frame the server sent before it has arrived. */
  async settle(): Promise<void> {
    const from = this.frames.length
    this.send({ type: 'ping' })
    await this.waitFor((f) => f.type === 'pong', { from })
  }

  close(): void {
    this.ws.close()
  }
}

// ---- chat fixtures over REST (the same paths a client takes) ----

export const userSocketUrl = (base: string) => `${base}/api/v1/chat/ws`
export const conversationSocketUrl = (base: string, conversationId: string, query = '') =>
  `${base}/api/v1/chat/ws/conversations/${conversationId}${query}`

async function call(
  app: FastifyInstance,
  user: TestUser,
  method: 'POST' | 'PATCH' | 'DELETE',
  url: string,
  payload?: object,
  expected: number[] = [200, 201, 204],
) {
  const res = await app.inject({ method, url: `/api/v1/chat${url}`, headers: user.auth, payload })
  if (!expected.includes(res.statusCode)) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
  return res.body ? res.json() : undefined
}

export async function directChat(app: FastifyInstance, a: TestUser, b: TestUser): Promise<string> {
  return (await call(app, a, 'POST', '/conversations', { recipient_id: b.id })).id as string
}

export async function groupChat(app: FastifyInstance, owner: TestUser, members: TestUser[]): Promise<string> {
  const body = await call(app, owner, 'POST', '/groups', {
    title: 'Team',
    member_ids: members.map((m) => m.id),
  })
  return body.id as string
}

export interface StoredMessage {
  id: string
  seq: number
  content: string
  client_msg_id: string | null
  [key: string]: unknown
}

export async function restSend(
  app: FastifyInstance,
  user: TestUser,
  conversationId: string,
  content: string,
  clientMsgId?: string,
): Promise<StoredMessage> {
  const payload = { content, ...(clientMsgId ? { client_msg_id: clientMsgId } : {}) }
  return call(app, user, 'POST', `/conversations/${conversationId}/messages`, payload)
}

export const restEdit = (app: FastifyInstance, user: TestUser, messageId: string, content: string) =>
  call(app, user, 'PATCH', `/messages/${messageId}`, { content })

export const restDelete = (app: FastifyInstance, user: TestUser, messageId: string) =>
  call(app, user, 'DELETE', `/messages/${messageId}`)

export const addMember = (app: FastifyInstance, admin: TestUser, conversationId: string, user: TestUser) =>
  call(app, admin, 'POST', `/conversations/${conversationId}/members`, { user_id: user.id })

export const removeMember = (app: FastifyInstance, admin: TestUser, conversationId: string, user: TestUser) =>
  call(app, admin, 'DELETE', `/conversations/${conversationId}/members/${user.id}`)

/** Every stored message of a conversation, oldest first (as a member reads it over REST). */
export async function history(app: FastifyInstance, user: TestUser, conversationId: string) {
  const items: StoredMessage[] = []
  for (let after = 0; ; ) {
    const res = await app.inject({
      url: `/api/v1/chat/conversations/${conversationId}/messages?after_seq=${after}&limit=100`,
      headers: user.auth,
    })
    const page = res.json() as { items: StoredMessage[]; next_after_seq: number | null }
    items.push(...page.items)
    if (page.next_after_seq === null) return items
    after = page.next_after_seq
  }
}

/** An access token for `userId` expiring in `ttlSec` (negative: already expired; the app's own minimum TTL is 10 s). */
export async function signAccessToken(userId: string, ttlSec: number): Promise<string> {
  const now = Math.floor(Date.now() / 1000)
  return new SignJWT({ typ: 'access' })
    .setProtectedHeader({ alg: 'HS256', typ: 'JWT', kid: TEST_KID })
    .setSubject(userId)
    .setIssuer('chat-api')
    .setAudience('chat-api')
    .setIssuedAt(now)
    .setExpirationTime(now + ttlSec)
    .setJti(crypto.randomUUID())
    .sign(new TextEncoder().encode(TEST_SECRET))
}

/**
 * Waits for a condition the server reaches on its own, with no event to await (a socket released
 * after its close, a health check after an engine restart). Checks at once, then backs off
 * (2 ms, doubling, at most 100 ms apart) until `timeoutMs`, checking one last time at the
 * deadline; the failure names `what` was awaited.
 */
export async function eventually(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs = 5000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let pause = 2
  for (let checks = 1; ; checks++) {
    if (await check()) return
    const left = deadline - Date.now()
    if (left <= 0) throw new Error(`timed out after ${timeoutMs} ms (${checks} checks) waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)))
    pause = Math.min(pause * 2, 100)
  }
}

/** A TCP port nobody listens on right now (for servers a test starts itself). */
export async function freePort(): Promise<number> {
  const srv = createServer().listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const { port } = srv.address() as { port: number }
  srv.close()
  return port
}

/** `[from, …, to]`: the seqs a socket should have seen, each once, in order. */
export const range = (from: number, to: number): number[] =>
  Array.from({ length: Math.max(0, to - from + 1) }, (_, i) => from + i)
