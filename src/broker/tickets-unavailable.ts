import type { TicketStore } from '../auth/tickets.js'
import { isRedisUnavailable, RedisUnavailableError } from './redis-errors.js'

/**
 * WebSocket tickets have no per-instance fallback: a ticket is issued by one instance and redeemed
 * by whichever one the load balancer picks for the upgrade, so a ticket kept locally would be
 * refused as invalid most of the time. While Redis is unavailable, issuing and redeeming answer
 * 503 with Retry-After; a client can still connect with its access token (Authorization header or
 * the `bearer, <token>` subprotocol).
 */
export class TicketsOrUnavailable implements TicketStore {
  constructor(private readonly shared: TicketStore) {}

  issue(userId: string, ttlSec: number): Promise<string> {
    return unavailableOnOutage(this.shared.issue(userId, ttlSec))
  }

  redeem(ticket: string): Promise<string | undefined> {
    return unavailableOnOutage(this.shared.redeem(ticket))
  }
}

async function unavailableOnOutage<T>(op: Promise<T>): Promise<T> {
  try {
    return await op
  } catch (err) {
    if (isRedisUnavailable(err)) {
      throw new RedisUnavailableError(
        'WebSocket tickets are unavailable while the shared store (Redis) is; retry shortly, or ' +
          'connect with the access token (Authorization header or the `bearer, <token>` subprotocol)',
        err,
      )
    }
    throw err
  }
}
