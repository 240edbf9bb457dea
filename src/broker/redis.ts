import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { Logger } from 'pino'
import { type ChatEvent, channelsOf, type Envelope, parseEnvelope } from '../protocol/events.js'
import type { Broker, Listener } from '../services/ports.js'
import { LocalHub } from './local-hub.js'

export interface RedisBrokerOptions {
  url: string
  /** Prefix of every channel, so deployments (and tests) can share one Redis. */
  prefix: string
  /** `sharded` uses SPUBLISH/SSUBSCRIBE (Redis 7): each channel lives on one shard of a Redis Cluster. */
  mode: 'classic' | 'sharded'
  logger: Logger
}

/**
 * Pub/Sub between instances through Redis, one channel per conversation (`conv:<id>`) and per
 * user (`user:<id>`). An instance subscribes to a channel while one of its sockets needs it.
 *
 * Delivery choice (see Broker): local listeners get an event at once from `publish`, and the
 * copy that comes back from Redis is dropped by instance id. So same-instance chat keeps working
 * while Redis is down, and nothing is delivered twice by one instance.
 *
 * Outage: publishing never waits for Redis (no offline queue): a failed publish is counted and
 * the event is recovered from PostgreSQL by the feeds' gap fill (`ws/feed.ts`) when the next
 * event arrives or when the broker reports `onReconnect`. Subscriptions are re-issued by this
 * class after a reconnect; the outage is logged once when it starts and once when it ends.
 */
export class RedisBroker implements Broker {
  readonly kind = 'redis' as const
  readonly instanceId = randomUUID()
  /** How this instance's envelopes start: `JSON.stringify` keeps the key order `o`, `e`. */
  private readonly echoPrefix = `{"o":${JSON.stringify(this.instanceId)},`
  private readonly hub = new LocalHub()
  private readonly pub: Redis
  private readonly sub: Redis
  private down = false
  private closing = false
  private readonly reconnectHandlers: (() => void)[] = []
  publishFailures = 0
  /** Envelopes from other instances that failed the schema check. */
  rejected = 0
  private readonly echo = Buffer.from(`{"o":"${this.instanceId}"`)

  constructor(private readonly opts: RedisBrokerOptions) {
    const common = {
      lazyConnect: true,
      maxRetriesPerRequest: 1,
      retryStrategy: (times: number) => Math.min(times * 100, 2000),
    }
    // Auto-pipelining sends the commands issued in one event-loop turn (a committed batch's
    // publishes) in one write: one PUBLISH syscall per message was a measured cost.
    this.pub = new Redis(opts.url, {
      ...common,
      enableOfflineQueue: false,
      enableAutoPipelining: true,
      connectionName: 'chat-pub',
    })
    // Subscriptions are tracked by the hub and re-issued on 'ready', not by ioredis.
    this.sub = new Redis(opts.url, {
      ...common,
      enableOfflineQueue: false,
      autoResubscribe: false,
      connectionName: 'chat-sub',
    })
    const onMessage = (channel: Buffer, payload: Buffer) => {
      // Our own echo is dropped before it is decoded (JSON.stringify puts `o` first).
      if (payload.subarray(0, this.echo.length).equals(this.echo)) return
      this.onMessage(channel.toString(), payload.toString())
    }
    this.sub.on(opts.mode === 'sharded' ? 'smessageBuffer' : 'messageBuffer', onMessage)
    for (const conn of [this.pub, this.sub]) {
      conn.on('error', () => this.markDown())
      conn.on('close', () => this.markDown())
      conn.on('ready', () => void this.onReady())
    }
  }

  /** Connects both connections; rejects when Redis does not answer (startup should fail loudly). */
  async connect(): Promise<void> {
    await Promise.all([this.pub.connect(), this.sub.connect()])
  }

  /** The command connection, shared by the Redis presence, ticket and rate-limit stores. */
  get commands(): Redis {
    return this.pub
  }

  key(name: string): string {
    return `${this.opts.prefix}:${name}`
  }

  publish(event: ChatEvent): void {
    this.hub.deliver(event)
    if (this.pub.status !== 'ready') {
      this.failed()
      return
    }
    const payload = JSON.stringify({ o: this.instanceId, e: event } satisfies Envelope)
    for (const channel of channelsOf(event)) {
      const sent =
        this.opts.mode === 'sharded'
          ? this.pub.spublish(this.key(channel), payload)
          : this.pub.publish(this.key(channel), payload)
      sent.catch(() => this.failed())
    }
  }

  async subscribe(channel: string, listener: Listener): Promise<() => void> {
    if (this.hub.add(channel, listener) && this.sub.status === 'ready') {
      // Resolves once Redis confirms: events published anywhere from now on reach this listener.
      await this.redisSubscribe([channel]).catch(() => this.markDown())
    }
    return () => {
      if (this.hub.remove(channel, listener) && this.sub.status === 'ready') {
        this.redisUnsubscribe(channel).catch(() => this.markDown())
      }
    }
  }

  healthy(): boolean {
    return this.pub.status === 'ready' && this.sub.status === 'ready'
  }

  /** Called after Redis comes back, so consumers re-read what they may have missed. */
  onReconnect(handler: () => void): void {
    this.reconnectHandlers.push(handler)
  }

  async close(): Promise<void> {
    this.closing = true
    await Promise.all([this.pub.quit().catch(() => undefined), this.sub.quit().catch(() => undefined)])
  }

  private redisSubscribe(channels: string[]): Promise<unknown> {
    const keys = channels.map((c) => this.key(c))
    return this.opts.mode === 'sharded' ? this.sub.ssubscribe(...keys) : this.sub.subscribe(...keys)
  }

  private redisUnsubscribe(channel: string): Promise<unknown> {
    return this.opts.mode === 'sharded'
      ? this.sub.sunsubscribe(this.key(channel))
      : this.sub.unsubscribe(this.key(channel))
  }

  private onMessage(channel: string, payload: string): void {
    // Our own echo comes back for every channel we publish on and subscribe to: recognise it by
    // its first bytes instead of parsing it.
    if (payload.startsWith(this.echoPrefix)) return
    // Checked, not cast: another instance may run another version, and a malformed event must not
    // reach sockets (it is dropped and counted; the feeds' gap fill recovers a dropped message).
    const envelope = parseEnvelope(payload)
    if (!envelope) {
      this.rejected++
      return
    }
    if (envelope.o === this.instanceId) return
    this.hub.deliver(envelope.e, channel.slice(this.opts.prefix.length + 1))
  }

  private failed(): void {
    this.publishFailures++
  }

  private markDown(): void {
    if (this.down || this.closing) return
    this.down = true
    this.opts.logger.error(
      'redis unavailable: cross-instance delivery paused; same-instance delivery and REST continue',
    )
  }

  private async onReady(): Promise<void> {
    if (!this.healthy() || !this.down) return
    const channels = this.hub.channels()
    // Re-subscribe in chunks; a huge SUBSCRIBE line would block Redis.
    for (let i = 0; i < channels.length; i += 1000) {
      await this.redisSubscribe(channels.slice(i, i + 1000)).catch(() => undefined)
    }
    this.down = false
    this.opts.logger.warn({ channels: channels.length }, 'redis available again: resubscribed')
    for (const handler of this.reconnectHandlers) handler()
  }
}
