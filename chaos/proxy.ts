import net from 'node:net'

interface Pair {
  client: net.Socket
  upstream: net.Socket
  connected: boolean
}

/**
 * A TCP proxy in front of one instance. Every client connection (REST and WebSocket) goes
 * through it, so the run can cut them all at once (`drop`) the way a failing load balancer or
 * network does, and knows how many connections the instance should be holding (fd check).
 * When the instance is down, a client connection is accepted and then reset, as behind a
 * real balancer whose backend died.
 */
export class TcpProxy {
  private readonly pairs = new Set<Pair>()
  private readonly server: net.Server
  private listening = 0

  constructor(readonly upstreamPort: number) {
    this.server = net.createServer({ pauseOnConnect: true }, (client) => this.accept(client))
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject)
      this.server.listen(0, '127.0.0.1', () => resolve())
    })
    const address = this.server.address()
    this.listening = typeof address === 'object' && address ? address.port : 0
    return this.listening
  }

  get port(): number {
    return this.listening
  }

  /** Connections currently open to the instance through this proxy. */
  get upstreamConnections(): number {
    let n = 0
    for (const p of this.pairs) if (p.connected && !p.upstream.destroyed) n++
    return n
  }

  /** Resets every proxied connection at once (RST both ways); returns how many there were. */
  drop(): number {
    const n = this.pairs.size
    for (const p of [...this.pairs]) this.reset(p)
    return n
  }

  async close(): Promise<void> {
    this.drop()
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private accept(client: net.Socket): void {
    const upstream = net.connect({ port: this.upstreamPort, host: '127.0.0.1' })
    const pair: Pair = { client, upstream, connected: false }
    this.pairs.add(pair)
    upstream.setNoDelay(true)
    client.setNoDelay(true)
    upstream.once('connect', () => {
      pair.connected = true
      client.pipe(upstream)
      upstream.pipe(client)
      client.resume()
    })
    // An error on one side resets the other; an orderly close is passed on with end() so the
    // last frames (a 1001 close frame) are flushed first. The timer bounds a peer that never closes.
    client.on('error', () => upstream.destroy())
    upstream.on('error', () => client.destroy())
    const closed = (other: net.Socket) => {
      if (!other.destroyed) {
        other.end()
        setTimeout(() => other.destroy(), 5000).unref()
      }
      if (client.destroyed && upstream.destroyed) this.pairs.delete(pair)
    }
    client.on('close', () => closed(upstream))
    upstream.on('close', () => closed(client))
  }

  private reset(pair: Pair): void {
    if (!this.pairs.delete(pair)) return
    for (const s of [pair.client, pair.upstream]) {
      if (s.destroyed) continue
      // RST rather than FIN: a dropped connection, not a polite close.
      if (typeof s.resetAndDestroy === 'function' && s.readyState !== 'opening') s.resetAndDestroy()
      else s.destroy()
    }
  }
}
