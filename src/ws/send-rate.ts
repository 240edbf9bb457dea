/**
 * Per-user token bucket for message sends on this instance: `perSec` sustained, `burst` at once.
 * A user's sockets on one instance share a bucket; across instances each instance allows its own
 * rate (see docs/scaling.md).
 */
export class SendRateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>()

  constructor(
    private readonly perSec: number,
    private readonly burst: number,
  ) {}

  take(userId: string, now = Date.now()): boolean {
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
