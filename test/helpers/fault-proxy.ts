import type { AddressInfo } from 'node:net'
import { connect, createServer, type Server, type Socket } from 'node:net'

/** A small seeded PRNG (mulberry32): the same seed makes the same faults at the same points. */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export type FaultKind = 'drop' | 'reset' | 'stall'

export interface FaultOptions {
  seed: number
  /** Chance, per chunk forwarded, that a fault cuts in at a random byte of that chunk. */
  perChunk?: number
  /** Mean ms between faults on a random open connection, whether or not it carries data. */
  meanIntervalMs?: number
  /** A stall holds both directions this long (random up to it), then resets or resumes. */
  maxStallMs?: number
}

interface Pair {
  client: Socket
  upstream: Socket
  stalled: boolean
  closed: boolean
}

/**
 * A TCP proxy in front of the server that misbehaves like a bad network: at random points
 * (seeded) it drops a connection (FIN both ways), resets it (RST both ways), or stalls it (no
 * bytes either way for a while, then it resumes or is reset). The server sees exactly what a real
 * network fault shows it. `quiet()` stops injecting, so a test can let everything settle.
 */
export class FaultProxy {
  readonly stats = { connections: 0, drop: 0, reset: 0, stall: 0, bytes: 0 }
  private readonly pairs = new Set<Pair>()
  private readonly random: () => number
  private active = false
  private ticker: ReturnType<typeof setTimeout> | undefined
  private port = 0

  private constructor(
    private readonly server: Server,
    private target: { host: string; port: number },
    private readonly options: Required<FaultOptions>,
  ) {
    this.random = seededRandom(options.seed)
  }

  static async start(targetUrl: string, options: FaultOptions): Promise<FaultProxy> {
    const target = new URL(targetUrl)
    const server = createServer()
    const proxy = new FaultProxy(
      server,
      { host: target.hostname, port: Number(target.port) },
      { perChunk: 0.03, meanIntervalMs: 200, maxStallMs: 1500, ...options },
    )
    server.on('connection', (socket) => proxy.accept(socket))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    proxy.port = (server.address() as AddressInfo).port
    return proxy
  }

  /** The proxy's base URL (http://127.0.0.1:port): give it to clients instead of the server's. */
  get url(): string {
    return `http://127.0.0.1:${this.port}`
  }

  get faults(): number {
    return this.stats.drop + this.stats.reset + this.stats.stall
  }

  /** New connections go to this server from now on (a load balancer moving to another instance). */
  retarget(url: string): void {
    const target = new URL(url)
    this.target = { host: target.hostname, port: Number(target.port) }
  }

  /** Starts injecting faults. */
  chaos(): void {
    this.active = true
    this.scheduleTick()
  }

  /** Stops injecting; stalled connections resume. */
  quiet(): void {
    this.active = false
    clearTimeout(this.ticker)
    for (const p of this.pairs) if (p.stalled) this.resume(p)
  }

  async close(): Promise<void> {
    this.quiet()
    for (const p of this.pairs) this.kill(p, 'reset')
    await new Promise<void>((resolve) => this.server.close(() => resolve()))
  }

  private accept(client: Socket): void {
    this.stats.connections++
    const upstream = connect(this.target.port, this.target.host)
    const pair: Pair = { client, upstream, stalled: false, closed: false }
    this.pairs.add(pair)
    client.setNoDelay(true)
    upstream.setNoDelay(true)
    this.pipe(pair, client, upstream)
    this.pipe(pair, upstream, client)
    const end = () => {
      if (pair.closed) return
      pair.closed = true
      this.pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    for (const s of [client, upstream]) {
      s.on('error', end)
      s.on('close', end)
    }
  }

  /** Forwards from → to; a chunk may be cut at a random byte by a fault. */
  private pipe(pair: Pair, from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (pair.closed) return
      if (this.active && this.random() < this.options.perChunk) {
        const cut = Math.floor(this.random() * chunk.length)
        if (cut > 0) this.write(to, chunk.subarray(0, cut))
        this.inject(pair)
        if (!pair.closed && pair.stalled) {
          // The rest of the chunk waits out the stall, like bytes held in a congested router.
          const rest = chunk.subarray(cut)
          this.whenResumed(pair, () => this.write(to, rest))
        }
        return
      }
      if (pair.stalled) {
        this.whenResumed(pair, () => this.write(to, chunk))
        return
      }
      this.write(to, chunk)
    })
    from.on('end', () => {
      if (!pair.closed) to.end()
    })
  }

  private write(to: Socket, chunk: Buffer): void {
    if (to.destroyed) return
    this.stats.bytes += chunk.length
    to.write(chunk)
  }

  private readonly held = new Map<Pair, (() => void)[]>()

  private whenResumed(pair: Pair, fn: () => void): void {
    const list = this.held.get(pair) ?? []
    list.push(fn)
    this.held.set(pair, list)
  }

  private inject(pair: Pair): void {
    const r = this.random()
    const kind: FaultKind = r < 0.35 ? 'drop' : r < 0.7 ? 'reset' : 'stall'
    this.stats[kind]++
    if (kind !== 'stall') {
      this.kill(pair, kind)
      return
    }
    pair.stalled = true
    pair.client.pause()
    pair.upstream.pause()
    const ms = Math.floor(this.random() * this.options.maxStallMs)
    const thenReset = this.random() < 0.3
    setTimeout(() => {
      if (pair.closed) return
      if (thenReset && this.active) this.kill(pair, 'reset')
      else this.resume(pair)
    }, ms)
  }

  private resume(pair: Pair): void {
    pair.stalled = false
    for (const fn of this.held.get(pair) ?? []) fn()
    this.held.delete(pair)
    pair.client.resume()
    pair.upstream.resume()
  }

  private kill(pair: Pair, kind: 'drop' | 'reset'): void {
    if (pair.closed) return
    pair.closed = true
    this.pairs.delete(pair)
    this.held.delete(pair)
    for (const s of [pair.client, pair.upstream]) {
      if (kind === 'reset') s.resetAndDestroy()
      else {
        s.end()
        s.destroySoon()
      }
    }
  }

  private scheduleTick(): void {
    clearTimeout(this.ticker)
    if (!this.active) return
    // Exponential gaps: faults arrive as a Poisson process with the given mean interval.
    const wait = -Math.log(1 - this.random()) * this.options.meanIntervalMs
    this.ticker = setTimeout(() => {
      const open = [...this.pairs].filter((p) => !p.closed && !p.stalled)
      const victim = open[Math.floor(this.random() * open.length)]
      if (victim && this.active) this.inject(victim)
      this.scheduleTick()
    }, wait)
  }
}
