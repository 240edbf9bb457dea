/** How often the wheel looks for expired tokens: a socket closes at most this late. */
const TICK_MS = 1000

/**
 * Token expiry for every socket of the gateway: sockets grouped by the second their token
 * expires (a JWT's `exp` is in whole seconds) and one timer that ends each second's group once
 * that second has begun. A `Timeout` per socket (with its closure) cost every idle socket about
 * 400 bytes of heap (docs/performance.md, per-socket memory); here a socket is one entry of a `Set`.
 * The timer runs only while some socket is waiting.
 */
export class ExpiryWheel<T> {
  private readonly bySecond = new Map<number, Set<T>>()
  /** The first second not yet ended. */
  private next = nowSecond()
  private timer: NodeJS.Timeout | undefined

  constructor(private readonly expire: (item: T) => void) {}

  /** `item` expires at `exp` (seconds since the epoch); one already past is ended at the next tick. */
  add(item: T, exp: number): void {
    const second = Math.max(exp, this.next)
    let group = this.bySecond.get(second)
    if (!group) {
      group = new Set()
      this.bySecond.set(second, group)
    }
    group.add(item)
    this.timer ??= setInterval(() => this.tick(), TICK_MS).unref()
  }

  /**
   * Forgets `item`, added with `exp`. Its group is found again from `exp`: a group moved up to
   * `next` at `add` is still `next` until a tick ends it (and then there is nothing to forget).
   */
  remove(item: T, exp: number): void {
    const second = Math.max(exp, this.next)
    const group = this.bySecond.get(second)
    if (!group?.delete(item) || group.size > 0) return
    this.bySecond.delete(second)
    this.stopWhenEmpty()
  }

  close(): void {
    clearInterval(this.timer)
    this.timer = undefined
    this.bySecond.clear()
  }

  private tick(): void {
    const now = nowSecond()
    // After a long stall (or a clock jump) the groups are fewer than the seconds passed.
    const seconds =
      now - this.next > this.bySecond.size
        ? [...this.bySecond.keys()].filter((s) => s <= now)
        : Array.from({ length: Math.max(0, now - this.next + 1) }, (_, i) => this.next + i)
    this.next = Math.max(this.next, now + 1)
    for (const second of seconds) {
      const group = this.bySecond.get(second)
      this.bySecond.delete(second)
      for (const item of group ?? []) this.expire(item)
    }
    this.stopWhenEmpty()
  }

  private stopWhenEmpty(): void {
    if (this.bySecond.size > 0) return
    clearInterval(this.timer)
    this.timer = undefined
  }
}

const nowSecond = (): number => Math.floor(Date.now() / 1000)
