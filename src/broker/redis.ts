import { randomUUID } from 'node:crypto'
import { Cluster } from 'ioredis'
import type { Logger } from 'pino'
import { type ChatEvent, channelsOf, type Envelope, parseEnvelope } from '../protocol/events.js'
import type { Broker, Listener } from '../services/ports.js'
import { LocalHub } from './local-hub.js'
import { commandClient, type RedisClient, type RedisTarget, subscriberClient } from './redis-client.js'

export interface RedisBrokerOptions {
  /** One server, or a Redis Cluster's seed nodes (then `mode` must be `sharded`). */
  target: RedisTarget
  /** Prefix of every channel, so deployments (and tests) can share one Redis. */
  prefix: string
  /** `sharded` uses SPUBLISH/SSUBSCRIBE (Redis 7): each channel lives on one shard of a Redis Cluster. */
  mode: 'classic' | 'sharded'
  logger: Logger
}

/** How long a subscription may take to be confirmed while shards recover before it is tried again. */
const RESUBSCRIBE_TIMEOUT_MS = 2000

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
 *
 * Redis Cluster (sharded mode only): each channel lives on the shard that owns its slot, and
 * ioredis keeps a subscriber per primary. When a primary fails, the channels it served hear
 * nothing until its replica has taken over and ioredis has subscribed there: from the first sign
 * of that (a subscriber or node lost) the broker counts as down, and it is up again once every
 * channel it needs is confirmed subscribed; then `onReconnect` handlers re-read what was missed,
 * as after a single server's outage.
 */
export class RedisBroker implements Broker {
  readonly kind = 'redis' as const
  readonly instanceId = randomUUID()
  /** How this instance's envelopes start: `JSON.stringify` keeps the key order `o`, `e`. */
  private readonly echoPrefix = `{"o":${JSON.stringify(this.instanceId)},`
  private readonly hub = new LocalHub()
  private readonly pub: RedisClient
  private readonly sub: RedisClient
  private readonly cluster: boolean
  private recovery: NodeJS.Timeout | undefined
  private down = false
  private closing = false
  private readonly reconnectHandlers: (() => void)[] = []
  publishFailures = 0
  /** Envelopes from other instances that failed the schema check. */
  rejected = 0
  private readonly echo = Buffer.from(`{"o":"${this.instanceId}"`)

  constructor(private readonly opts: RedisBrokerOptions) {
    this.cluster = !('url' in opts.target)
    if (this.cluster && opts.mode !== 'sharded') {
      throw new Error('a Redis Cluster is used in sharded Pub/Sub mode only')
    }
    this.pub = commandClient(opts.target)
    this.sub = subscriberClient(opts.target)
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
    if (this.sub instanceof Cluster) {
      // A primary's subscriber is gone (its node failed): its channels are deaf until recovery.
      this.sub.on('-node', () => this.markDown())
      // ioredis has subscribers for the new topology: check every channel now rather than later.
      this.sub.on('subscribersReady', () => this.recoverSoon(0))
    }
  }

  /** Connects both connections; rejects when Redis does not answer (startup should fail loudly). */
  async connect(): Promise<void> {
    await Promise.all([this.pub.connect(), this.sub.connect()])
  }

  /** The command connection, shared by the Redis presence, ticket, rate-limit and lease stores. */
  get commands(): RedisClient {
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
    return () => this.unsubscribe(channel, listener)
  }

  unsubscribe(channel: string, listener: Listener): void {
    if (this.hub.remove(channel, listener) && this.sub.status === 'ready') {
      this.redisUnsubscribe(channel).catch(() => this.markDown())
    }
  }

  /** Connected, and every subscription this instance needs confirmed since the last outage began. */
  healthy(): boolean {
    return this.connected() && !this.down
  }

  /** Called after Redis comes back, so consumers re-read what they may have missed. */
  onReconnect(handler: () => void): void {
    this.reconnectHandlers.push(handler)
  }

  async close(): Promise<void> {
    this.closing = true
    clearTimeout(this.recovery)
    await Promise.all([this.pub.quit().catch(() => undefined), this.sub.quit().catch(() => undefined)])
  }

  private connected(): boolean {
    return this.pub.status === 'ready' && this.sub.status === 'ready'
  }

  private redisSubscribe(channels: string[]): Promise<unknown> {
    const keys = channels.map((c) => this.key(c))
    // A cluster takes one slot per SSUBSCRIBE: one command per channel, pipelined.
    if (this.cluster) return Promise.all(keys.map((k) => this.sub.ssubscribe(k)))
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
    if (this.closing) return
    if (!this.down) {
      this.down = true
      this.opts.logger.error(
        'redis unavailable: cross-instance delivery paused; same-instance delivery and REST continue',
      )
    }
    // On a cluster no 'ready' follows a shard's failover (the cluster connection stays up).
    if (this.cluster) this.recoverSoon()
  }

  /**
   * Schedules a recovery attempt. One at a time: errors repeating faster than the delay must not
   * keep postponing it. A delay of 0 (the topology just changed) goes ahead of a pending one.
   */
  private recoverSoon(delayMs = 500): void {
    if (!this.down || this.closing) return
    if (this.recovery !== undefined && delayMs > 0) return
    clearTimeout(this.recovery)
    this.recovery = setTimeout(() => {
      this.recovery = undefined
      void this.recoverShards()
    }, delayMs)
  }

  /**
   * Cluster: up again once every channel this instance needs is confirmed subscribed. Confirmed
   * on the subscriber connection ioredis subscribed on itself, after its own re-subscriptions, so
   * from here on every publish reaches this instance and what came before is re-read by the
   * `onReconnect` handlers. (ioredis lists a channel once per SSUBSCRIBE sent through it, until
   * it is unsubscribed: repeats are harmless.)
   */
  private async recoverShards(): Promise<void> {
    if (!this.down || this.closing) return
    const channels = this.hub.channels()
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error('resubscribe timed out')), RESUBSCRIBE_TIMEOUT_MS)
    })
    const ok = await Promise.race([this.redisSubscribe(channels), timeout]).then(
      () => this.connected(),
      () => false,
    )
    clearTimeout(timer)
    if (!ok) return this.recoverSoon(1000)
    this.up(channels.length)
  }

  private up(channels: number): void {
    if (!this.down) return
    this.down = false
    this.opts.logger.warn({ channels }, 'redis available again: resubscribed')
    for (const handler of this.reconnectHandlers) handler()
  }

  private async onReady(): Promise<void> {
    if (this.cluster) return this.recoverSoon(0)
    if (!this.connected() || !this.down) return
    const channels = this.hub.channels()
    // Re-subscribe in chunks; a huge SUBSCRIBE line would block Redis.
    for (let i = 0; i < channels.length; i += 1000) {
      await this.redisSubscribe(channels.slice(i, i + 1000)).catch(() => undefined)
    }
    this.up(channels.length)
  }
}
