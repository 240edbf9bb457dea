import { newTicket, type TicketStore } from '../auth/tickets.js'
import type { ConnectionLeases, Presence, RateLimiter, SendRate } from '../services/ports.js'

/**
 * The in-process versions of the shared stores: one instance, nothing to share. The Redis
 * versions (redis-*.ts) hold the same contracts across instances; test/conformance runs both.
 */

export class MemoryTicketStore implements TicketStore {
  private readonly tickets = new Map<string, { userId: string; expiresAt: number }>()

  async issue(userId: string, ttlSec: number): Promise<string> {
    const now = Date.now()
    if (this.tickets.size > 10_000) {
      for (const [k, t] of this.tickets) if (t.expiresAt <= now) this.tickets.delete(k)
    }
    const ticket = newTicket()
    this.tickets.set(ticket, { userId, expiresAt: now + ttlSec * 1000 })
    return ticket
  }

  async redeem(ticket: string): Promise<string | undefined> {
    const t = this.tickets.get(ticket)
    this.tickets.delete(ticket)
    return t && t.expiresAt > Date.now() ? t.userId : undefined
  }
}

export class MemoryPresence implements Presence {
  private readonly counts = new Map<string, number>()

  async connect(userId: string): Promise<boolean> {
    const n = (this.counts.get(userId) ?? 0) + 1
    this.counts.set(userId, n)
    return n === 1
  }

  async disconnect(userId: string): Promise<boolean> {
    const n = (this.counts.get(userId) ?? 0) - 1
    if (n > 0) {
      this.counts.set(userId, n)
      return false
    }
    this.counts.delete(userId)
    return true
  }

  async onlineAmong(userIds: string[]): Promise<Set<string>> {
    return new Set(userIds.filter((id) => this.counts.has(id)))
  }

  async connections(userId: string): Promise<number> {
    return this.counts.get(userId) ?? 0
  }

  /** Sockets per user as counted now (what the Redis fallback writes back after an outage). */
  snapshot(): Map<string, number> {
    return new Map(this.counts)
  }

  async close(): Promise<void> {}
}

/** Sockets per user on this process: exact, as every call runs to completion before the next. */
export class MemoryConnectionLeases implements ConnectionLeases {
  private readonly byUser = new Map<string, Set<string>>()

  async acquire(userId: string, socketId: string, limit: number): Promise<boolean> {
    const held = this.byUser.get(userId) ?? new Set<string>()
    if (!held.has(socketId) && held.size >= limit) return false
    held.add(socketId)
    this.byUser.set(userId, held)
    return true
  }

  async release(userId: string, socketId: string): Promise<void> {
    const held = this.byUser.get(userId)
    held?.delete(socketId)
    if (held?.size === 0) this.byUser.delete(userId)
  }

  async close(): Promise<void> {}
}

export class MemoryRateLimiter implements RateLimiter {
  private readonly windows = new Map<string, { count: number; resetAt: number }>()
  /** Key → end of its hold (ms, caller's clock). */
  private readonly holds = new Map<string, number>()

  async hit(key: string, windowSec: number) {
    const now = Date.now()
    let w = this.windows.get(key)
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + windowSec * 1000 }
      this.windows.set(key, w)
      if (this.windows.size > 100_000) this.sweep(now)
    }
    w.count++
    return { count: w.count, resetInSec: Math.ceil((w.resetAt - now) / 1000) }
  }

  async release(key: string) {
    const w = this.windows.get(key)
    if (w && w.count > 0) w.count--
  }

  async reset(key: string) {
    this.windows.delete(key)
    this.holds.delete(key)
  }

  async acquireHold(key: string, holdMs: number, nowMs: number) {
    const until = this.holds.get(key) ?? 0
    if (until > nowMs) return until - nowMs
    this.holds.set(key, nowMs + holdMs)
    if (this.holds.size > 100_000) {
      for (const [k, end] of this.holds) if (end <= nowMs) this.holds.delete(k)
    }
    return 0
  }

  private sweep(now: number) {
    for (const [k, w] of this.windows) if (w.resetAt <= now) this.windows.delete(k)
  }
}

/** One instance's token buckets. */
export class MemorySendRate implements SendRate {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    private readonly perSec: number,
    private readonly burst: number,
  ) {}

  async take(userId: string): Promise<boolean> {
    return this.takeAt(userId, Date.now())
  }

  takeAt(userId: string, now: number): boolean {
    let b = this.buckets.get(userId)
    if (!b) {
      b = { tokens: this.burst, at: now }
      this.buckets.set(userId, b)
      if (this.buckets.size > 100_000) this.sweep(now)
    }
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSec)
    b.at = now
    if (b.tokens < 1) return false
    b.tokens -= 1
    return true
  }

  private sweep(now: number): void {
    for (const [k, b] of this.buckets)
      if (now - b.at > (this.burst / this.perSec) * 1000) this.buckets.delete(k)
  }
}
