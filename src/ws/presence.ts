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

  async close(): Promise<void> {}
}
