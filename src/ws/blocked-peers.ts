/**
 * The users who block one socket's user: their presence and typing are not sent to it. Read once
 * when the socket opens (after it subscribed to its user channel) and kept current by
 * `block.changed` events, so a block takes effect at once on every instance without a query per
 * presence or typing event. Changes heard while the first read runs are applied over its result.
 */
export class BlockedPeers {
  private readonly ids = new Set<string>()
  private pending: Map<string, boolean> | undefined = new Map()

  async load(read: () => Promise<string[]>): Promise<void> {
    for (const id of await read()) this.ids.add(id)
    for (const [id, blocked] of this.pending ?? []) this.apply(id, blocked)
    this.pending = undefined
  }

  apply(blockerId: string, blocked: boolean): void {
    this.pending?.set(blockerId, blocked)
    if (blocked) this.ids.add(blockerId)
    else this.ids.delete(blockerId)
  }

  has(userId: string): boolean {
    return this.ids.has(userId)
  }
}
