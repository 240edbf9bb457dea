import { randomBytes, randomUUID } from 'node:crypto'
import { connect, type Socket } from 'node:net'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { registerUser, type TestUser } from '../helpers/app.js'
import { useSocketApp } from '../helpers/socket-app.js'
import { directChat } from '../helpers/ws-client.js'

/**
 * An upgrade request on a raw TCP socket: what arrived, and whether the server ended the
 * connection. A refused upgrade leaves the socket outside Node's HTTP server, so nothing but the
 * app itself ends it.
 */
async function refusedUpgrade(
  base: string,
  path: string,
  headers: Record<string, string> = {},
): Promise<{ status: number; ended: boolean }> {
  const { hostname, port } = new URL(base)
  const socket: Socket = connect(Number(port), hostname)
  socket.on('error', () => {})
  let received = ''
  socket.on('data', (d: Buffer) => {
    received += d.toString('latin1')
  })
  const ended = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)))
  const lines = [
    `GET ${path} HTTP/1.1`,
    `Host: ${hostname}:${port}`,
    'Connection: Upgrade',
    'Upgrade: websocket',
    'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
    ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
  ]
  socket.write(`${lines.join('\r\n')}\r\n\r\n`)
  // A complete response followed by no close within this long is the leak.
  let timer: NodeJS.Timeout | undefined
  const leaked = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), 2000)
  })
  const result = await Promise.race([ended, leaked])
  clearTimeout(timer)
  socket.destroy()
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0)
  return { status, ended: result }
}

describe('a refused WebSocket upgrade ends the TCP connection', () => {
  const h = useSocketApp({ WS_ORIGINS: 'https://chat.example.com', WS_MAX_CONNECTIONS_PER_USER: '1' })
  let a: TestUser
  let conv: string
  const held: Socket[] = []

  beforeAll(async () => {
    a = await registerUser(h.t.app, 'Ann')
    conv = await directChat(h.t.app, a, await registerUser(h.t.app, 'Bob'))
  })
  afterEach(() => {
    for (const s of held.splice(0)) s.destroy()
  })
  afterAll(() => {
    for (const s of held.splice(0)) s.destroy()
  })

  const conversationPath = (id: string): string => `/api/v1/chat/ws/conversations/${id}`
  type Case = [
    name: string,
    path: () => string,
    headers: 'none' | 'bearer' | 'foreign origin',
    status: number,
  ]
  const cases: Case[] = [
    ['414, a path parameter over the router limit', () => conversationPath('x'.repeat(101)), 'none', 414],
    ['400, a malformed percent-encoding', () => conversationPath('%E0%A4%A'), 'none', 400],
    ['401, no token', () => '/api/v1/chat/ws', 'none', 401],
    ['401, no token on a conversation', () => conversationPath(randomUUID()), 'none', 401],
    ['403, a foreign Origin', () => '/api/v1/chat/ws', 'foreign origin', 403],
    ['404, not a member', () => conversationPath(randomUUID()), 'bearer', 404],
    ['404, an unknown route', () => '/api/v1/chat/nowhere', 'none', 404],
    ['404, an unknown route under the socket path', () => `${conversationPath(randomUUID())}/x`, 'none', 404],
    ['422, an invalid query', () => '/api/v1/chat/ws?since_seq=minus', 'bearer', 422],
  ]
  const headersFor = (kind: Case[2]): Record<string, string> =>
    kind === 'bearer'
      ? { Authorization: `Bearer ${a.token}` }
      : kind === 'foreign origin'
        ? { Origin: 'https://evil.example' }
        : {}

  it.each(cases)('%s', async (_name, path, headers, status) => {
    expect(await refusedUpgrade(h.t.url, path(), headersFor(headers))).toEqual({ status, ended: true })
  })

  it('429, past the per-user connection limit', async () => {
    const first = await h.convSocket(a, conv)
    await first.waitFor((f) => f.type === 'ready')
    const got = await refusedUpgrade(h.t.url, '/api/v1/chat/ws', headersFor('bearer'))
    expect(got).toEqual({ status: 429, ended: true })
  })
})
