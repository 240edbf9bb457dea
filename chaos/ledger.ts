/**
 * Everything the run observes, in one place: violations (by kind, with a few examples each),
 * counters, acknowledged messages, delivery gaps and group-removal episodes. Clients and fault
 * injectors write to it while the run goes; the checker reads it at the end.
 */

export interface AckRecord {
  conv: string
  seq: number
  id: string
  sender: string
}

/** A socket's delivery jumped from `after` to `got`: the seqs between were not delivered to it. */
export interface Gap {
  user: number
  conv: string
  after: number
  got: number
  session: number
  atMs: number
}

/**
 * One removal of `user` from a group and, once it is over, the re-add. The seqs a removed member
 * may miss lie in (lo, hi]: `lo` is the group's last seq read just before the removal request
 * (every seq up to it is owed to the member, since it was committed before the removal began),
 * `hi` the last seq read just after the re-add answered (every later seq is owed again).
 */
export interface Episode {
  user: number
  conv: string
  lo: number
  hi?: number
  removedAtMs: number
  addedAtMs?: number
  /** The member's open socket received `member.removed` for it (it was online then). */
  seenLive: boolean
  /**
   * The member's cursor when a `sync` naming the group was refused: its socket was away when
   * it was removed, and the server no longer resumes the group for it (for the report).
   */
  refusedCursor?: number
}

interface Outage {
  kind: string
  from: number
  /** The dependency runs again (instances may still be reconnecting). */
  back?: number
  /** Every instance reports ready again. */
  to?: number
  /** Effects seen until then still count as the outage's (a grace period after `to`). */
  until?: number
}

const EXAMPLES_PER_KIND = 5
/** After a dependency is back, clients may still see its effects while instances reconnect. */
const OUTAGE_GRACE_MS = 10_000

export class Ledger {
  private t0 = performance.now()
  readonly violations = new Map<string, { count: number; examples: string[] }>()
  readonly counts: Record<string, number> = {}
  readonly http: Record<string, number> = {}
  readonly wsErrors: Record<string, number> = {}
  readonly acked = new Map<string, AckRecord>()
  /** Sends the server refused for good (not a member), by client_msg_id, with the answer. */
  readonly refusedSends = new Map<string, string>()
  readonly gaps: Gap[] = []
  readonly episodes: Episode[] = []
  private readonly outages: Outage[] = []
  /** The fault in progress (for the context of a violation). */
  currentFault: string | undefined

  /** Times are counted from the start of the load (setup before it is negative). */
  startClock(): void {
    this.t0 = performance.now()
  }

  /** Milliseconds since the load started. */
  now(): number {
    return performance.now() - this.t0
  }

  stamp(ms = this.now()): string {
    return `+${(ms / 1000).toFixed(1)}s`
  }

  violation(kind: string, detail: string): void {
    let v = this.violations.get(kind)
    if (!v) {
      v = { count: 0, examples: [] }
      this.violations.set(kind, v)
    }
    v.count++
    if (v.examples.length < EXAMPLES_PER_KIND) {
      v.examples.push(
        `${this.stamp()} ${detail}${this.currentFault ? ` [during: ${this.currentFault}]` : ''}`,
      )
    }
  }

  get violationCount(): number {
    let n = 0
    for (const v of this.violations.values()) n += v.count
    return n
  }

  count(name: string, n = 1): void {
    this.counts[name] = (this.counts[name] ?? 0) + n
  }

  outageStarted(kind: string): Outage {
    const o: Outage = { kind, from: this.now() }
    this.outages.push(o)
    return o
  }

  dependencyBack(o: Outage): void {
    o.back = this.now()
  }

  outageEnded(o: Outage): void {
    o.to = this.now()
    o.until = o.to + OUTAGE_GRACE_MS
  }

  /** A new fault starts: what follows is its doing, no longer the last outage's. */
  endGrace(): void {
    for (const o of this.outages) if (o.until !== undefined) o.until = Math.min(o.until, this.now())
  }

  /** A dependency is stopped right now (an instance cannot start then: it needs both). */
  dependencyDown(): boolean {
    return this.outages.some((o) => o.back === undefined)
  }

  /** The dependency outage at time `t`, counting a grace period after it ended (cut short by the next fault). */
  outageAt(t = this.now()): string | undefined {
    return this.outages.findLast((o) => o.from <= t && t <= (o.until ?? Number.POSITIVE_INFINITY))?.kind
  }

  /**
   * An HTTP answer a client saw. A 5xx other than 503 is always a violation; a 503 during a
   * dependency outage must say when to retry (Retry-After).
   */
  httpAnswer(what: string, status: number, headers: Record<string, unknown>, body = ''): void {
    const key = `${what} ${status}`
    this.http[key] = (this.http[key] ?? 0) + 1
    if (status < 500) return
    const outage = this.outageAt()
    const context = `${what} → ${status} ${body.replace(/\s+/g, ' ').slice(0, 160)}${outage ? ` (${outage} outage)` : ''}`
    if (status !== 503) this.violation('http_5xx_not_503', context)
    else if (outage && headers['retry-after'] === undefined)
      this.violation('http_503_without_retry_after', context)
  }

  wsError(code: string, aboutSend: boolean, message: string, user: number): void {
    const key = `${code}${aboutSend ? ' (send)' : ''}`
    this.wsErrors[key] = (this.wsErrors[key] ?? 0) + 1
    if (code === 'internal') {
      const outage = this.outageAt()
      this.violation(
        'ws_error_internal',
        `user ${user}: ${aboutSend ? 'message.send' : 'frame'} → error{internal} "${message}"${outage ? ` (${outage} outage)` : ''}`,
      )
    }
  }

  /** The newest episode of `user` in `conv`, if any. */
  lastEpisode(user: number, conv: string): Episode | undefined {
    for (let i = this.episodes.length - 1; i >= 0; i--) {
      const e = this.episodes[i] as Episode
      if (e.user === user && e.conv === conv) return e
    }
    return undefined
  }
}
