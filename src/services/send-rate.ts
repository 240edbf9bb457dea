/** Per-user message send rate: a token bucket of `perSec` sustained and `burst` at once. */
export interface SendRate {
  take(userId: string): Promise<boolean>
}

/** One instance's buckets; `broker/redis-stores.ts` has the shared one used with Redis. */
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
