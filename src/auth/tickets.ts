import { randomBytes } from 'node:crypto'

/**
 * Single-use WebSocket tickets for browsers, which cannot set an Authorization header on a
 * WebSocket. `issue` stores ticket → user id for `ttlSec`; `redeem` returns the user once.
 * Implemented in `broker/` (in-process, and Redis so a ticket issued on one instance is redeemed on any).
 */
export interface TicketStore {
  issue(userId: string, ttlSec: number): Promise<string>
  redeem(ticket: string): Promise<string | undefined>
}

export const newTicket = (): string => randomBytes(24).toString('base64url')
