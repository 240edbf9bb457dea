/**
 * The users who block one socket's user: their presence and typing are not sent to it. Read once
 * when the socket opens (after it subscribed to its user channel) and kept current by
 * `block.changed` events, so a block takes effect at once on every instance without a query per
 * presence or typing event. Changes heard while the first read runs are applied over its result.
 */
export class BlockedPeers {
  /** Made on the first blocker: most users have none, and an empty Set costs every socket ~150 bytes. */
  private ids: Set<string> | undefined
  /** Changes heard while `load` runs; made on the first one. */
  private pending: Map<string, boolean> | undefined
  private loaded = false

  async load(read: () => Promise<string[]>): Promise<void> {
    const ids = await read()
    this.loaded = true
    for (const id of ids) this.apply(id, true)
    for (const [id, blocked] of this.pending ?? []) this.apply(id, blocked)
    this.pending = undefined
  }

  apply(blockerId: string, blocked: boolean): void {
    if (!this.loaded) {
      this.pending ??= new Map()
      this.pending.set(blockerId, blocked)
    }
    if (blocked) {
      this.ids ??= new Set()
      this.ids.add(blockerId)
    } else this.ids?.delete(blockerId)
  }

  has(userId: string): boolean {
    return this.ids?.has(userId) ?? false
  }
}
