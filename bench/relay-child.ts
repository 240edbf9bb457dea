import { randomUUID } from 'node:crypto'
import { type WebSocket, WebSocketServer } from 'ws'
import { sendEvent, serveIpc } from './proc.js'

/**
 * The `ceiling` reference: a bare `ws` relay with no auth, no validation beyond JSON.parse, and
 * no storage. It speaks the chat protocol's frames (same shapes and field order, so the same
 * load generator drives it): `ready` on open, `message.new` serialized once and sent to every
 * socket of the conversation, then `message.ack` to the sender. Membership comes from the URL:
 * `/?user=<id>&convs=<id>,<id>`.
 */
interface Conv {
  seq: number
  sockets: Set<WebSocket>
}
const conversations = new Map<string, Conv>()

const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 16384 })
wss.on('connection', (ws, req) => {
  const url = new URL(req.url ?? '/', 'http://relay')
  const user = url.searchParams.get('user') ?? randomUUID()
  const mine = (url.searchParams.get('convs') ?? '').split(',').filter(Boolean)
  for (const id of mine) {
    let c = conversations.get(id)
    if (!c) {
      c = { seq: 0, sockets: new Set() }
      conversations.set(id, c)
    }
    c.sockets.add(ws)
  }
  ws.on('close', () => {
    for (const id of mine) conversations.get(id)?.sockets.delete(ws)
  })
  ws.on('message', (data) => {
    let f: { type?: string; conversation_id?: string; content?: string; client_msg_id?: string }
    try {
      f = JSON.parse(data.toString())
    } catch {
      return
    }
    if (f.type !== 'message.send' || !f.conversation_id) return
    const c = conversations.get(f.conversation_id)
    if (!c) return
    const message = {
      id: randomUUID(),
      conversation_id: f.conversation_id,
      seq: ++c.seq,
      sender_id: user,
      content: f.content ?? '',
      client_msg_id: f.client_msg_id ?? null,
      created_at: new Date().toISOString(),
      edited_at: null,
      deleted_at: null,
    }
    const frame = JSON.stringify({ type: 'message.new', conversation_id: f.conversation_id, message })
    for (const s of c.sockets) s.send(frame)
    ws.send(JSON.stringify({ type: 'message.ack', client_msg_id: message.client_msg_id, message }))
  })
  ws.send(JSON.stringify({ type: 'ready', user_id: user }))
})

wss.on('listening', () => {
  const address = wss.address()
  sendEvent('listening', { port: typeof address === 'object' && address ? address.port : 0 })
})

await serveIpc(
  async (op, msg) => {
    if (op === 'stats') {
      if (typeof globalThis.gc === 'function') {
        globalThis.gc()
        await new Promise((r) => setTimeout(r, 50))
        globalThis.gc()
      }
      const m = process.memoryUsage()
      return { rss: m.rss, heapUsed: m.heapUsed }
    }
    if (op === 'heapSnapshot') {
      const { writeHeapSnapshot } = await import('node:v8')
      globalThis.gc?.()
      return writeHeapSnapshot(msg.file as string)
    }
    throw new Error(`unknown op ${op}`)
  },
  async () => {
    for (const ws of wss.clients) ws.terminate()
    await new Promise((resolve) => wss.close(resolve))
  },
)
