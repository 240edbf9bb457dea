import { randomBytes } from 'node:crypto'

/**
 * Single-use WebSocket tickets for browsers, which cannot set an Authorization header on a
 * WebSocket. `issue` stores ticket → user id for `ttlSec`; `redeem` returns the user once.
 */
export interface TicketStore {
  issue(userId: string, ttlSec: number): Promise<string>
  redeem(ticket: string): Promise<string | undefined>
}

export const newTicket = (): string => randomBytes(24).toString('base64url')

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
