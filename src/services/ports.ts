import type { ChatEvent } from '../protocol/events.js'

/**
 * What the services need from the shared infrastructure, declared here and implemented in
 * `broker/` (in-process and Redis), so services never name an implementation and `broker/` never
 * reaches up into the transports.
 */

/** Gets a channel's events: a function, or an object (a socket subscribes itself, not a closure of its own). */
export type Listener =
  | ((event: ChatEvent, channel: string) => void)
  | { onEvent(event: ChatEvent, channel: string): void }

/**
 * Carries committed changes to every instance's sockets.
 *
 * Delivery choice: `publish` hands the event to this instance's own listeners at once,
 * synchronously, and then to the other instances; an instance drops its own echo when it
 * comes back. So same-instance delivery keeps working while Redis is down, and no event is
 * delivered twice by one instance.
 *
 * Guarantee: live delivery is at most once and, across instances, not necessarily in commit
 * order. Consumers repair gaps and order from the store by `seq` (messages are durable before
 * they are published), which is why a lost publish is never a lost message.
 */
export interface Broker {
  readonly kind: 'memory' | 'redis'
  /** Events committed but not handed to other instances (clients recover them by resume). */
  readonly publishFailures: number
  /** Delivers locally, then forwards to other instances. Never throws: failures are counted and logged. */
  publish(event: ChatEvent): void
  /**
   * Adds a listener to a channel. Resolves once events published anywhere after this point
   * will reach it (for Redis: the SUBSCRIBE is confirmed). The returned function removes it;
   * the instance unsubscribes from the channel when its last listener leaves.
   */
  subscribe(channel: string, listener: Listener): Promise<() => void>
  /** Removes a listener as the function `subscribe` returned does; removing one twice is harmless. */
  unsubscribe(channel: string, listener: Listener): void
  /** True when events reach other instances (always true for the in-process broker). */
  healthy(): boolean
  /** Registers a handler run after an outage ends, so consumers re-read what they may have missed. */
  onReconnect?(handler: () => void): void
  close(): Promise<void>
}

/**
 * Who is online: a user is online while they hold at least one socket on any instance.
 * `connect`/`disconnect` return true when the user's state changed (so the caller announces it).
 */
export interface Presence {
  connect(userId: string): Promise<boolean>
  disconnect(userId: string): Promise<boolean>
  onlineAmong(userIds: string[]): Promise<Set<string>>
  /** Sockets the user holds across instances (for the per-user connection limit). */
  connections(userId: string): Promise<number>
  close(): Promise<void>
}

/**
 * The per-user socket limit (WS_MAX_CONNECTIONS_PER_USER), exact across instances: every open
 * socket holds a lease, and a user may hold at most `limit` at once anywhere. Leases of an
 * instance that dies expire on their own (WS_CONNECTION_LEASE_MS), so a crash cannot lock a user
 * out for good.
 */
export interface ConnectionLeases {
  /**
   * Takes a lease for socket `socketId` of `userId` when the user holds fewer than `limit`, and
   * says whether it did. Atomic: of callers racing on any instance, at most `limit` succeed.
   */
  acquire(userId: string, socketId: string, limit: number): Promise<boolean>
  /** Gives the lease back. Never throws: a lease that cannot be given back expires. */
  release(userId: string, socketId: string): Promise<void>
  close(): Promise<void>
}

/** Fixed-window counters for abuse limits (login failures, registrations, tickets). */
export interface RateLimiter {
  /** Counts one hit on `key` and returns how many the window holds now and when it resets. Atomic. */
  hit(key: string, windowSec: number): Promise<{ count: number; resetInSec: number }>
  /** Takes one hit back (an attempt counted up front that turned out not to count). Never below zero. */
  release(key: string): Promise<void>
  /** Forgets `key`: its window and its hold. */
  reset(key: string): Promise<void>
  /**
   * When no hold on `key` runs at `nowMs`, starts one lasting `holdMs` and returns 0: the caller
   * may go on. Otherwise returns the milliseconds the running hold has left. Atomic: of parallel
   * callers, one goes on. Time is the caller's clock, not the store's, so a test can move it.
   */
  acquireHold(key: string, holdMs: number, nowMs: number): Promise<number>
}

/** Per-user message send rate: a token bucket of `perSec` sustained and `burst` at once. */
export interface SendRate {
  take(userId: string): Promise<boolean>
}
