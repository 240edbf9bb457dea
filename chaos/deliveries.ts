import type { Ledger } from './ledger.js'

/**
 * One user's deliveries, per conversation, checked as each `message.new` arrives: seqs must rise
 * by one across all of the user's sockets (each resumes at the cursor the previous one reached).
 * A repeat or a step back is a violation at once; a jump is a gap, judged at the end (a removal
 * may excuse it). Nothing may arrive for a group on the socket that was told of the user's removal.
 */
export class Deliveries {
  readonly cursors = new Map<string, number>()
  /** Every conversation the user has been in: all are named in `sync` (a re-add shows up that way). */
  readonly known = new Set<string>()
  /** Conversations whose `member.removed` (for this user) arrived on the current socket. */
  private readonly removedHere = new Set<string>()

  constructor(
    private readonly user: number,
    private readonly ledger: Ledger,
  ) {}

  join(conv: string): void {
    this.known.add(conv)
    if (!this.cursors.has(conv)) this.cursors.set(conv, 0)
  }

  cursor(conv: string): number {
    return this.cursors.get(conv) ?? 0
  }

  /** The first frame of a new socket. */
  syncFrame(): string {
    return JSON.stringify({
      type: 'sync',
      cursors: Object.fromEntries([...this.known].map((c) => [c, this.cursor(c)])),
    })
  }

  newSocket(): void {
    this.removedHere.clear()
  }

  removed(conv: string): void {
    this.removedHere.add(conv)
  }

  added(conv: string): void {
    this.removedHere.delete(conv)
  }

  onMessage(conv: string, seq: number, session: number): void {
    if (!this.known.has(conv)) return
    this.ledger.count('deliveries')
    const where = `user ${this.user} conv ${conv.slice(0, 8)} seq ${seq} (socket #${session})`
    if (this.removedHere.has(conv)) this.ledger.violation('delivered_after_removal', where)
    const last = this.cursor(conv)
    if (seq <= last) {
      const late = this.ledger.gaps.some(
        (g) => g.user === this.user && g.conv === conv && seq > g.after && seq < g.got,
      )
      this.ledger.violation(late ? 'out_of_order_delivery' : 'duplicate_delivery', `${where} after ${last}`)
      return
    }
    if (seq > last + 1)
      this.ledger.gaps.push({
        user: this.user,
        conv,
        after: last,
        got: seq,
        session,
        atMs: this.ledger.now(),
      })
    this.cursors.set(conv, seq)
  }
}
