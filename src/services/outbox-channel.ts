/**
 * The seam between the transactional outbox (issue 16) and the ways an event leaves the service.
 * An event is written to the outbox in the same transaction as the change that causes it; a worker
 * on any instance claims it, asks each registered channel which targets it has for that event, and
 * delivers to each target separately (so one slow or failing receiver never holds back another,
 * and retries are per target). Channels: `webhook` (one target per registered endpoint) and
 * `push` (one target per Web Push subscription of an offline member).
 */

/** One event as stored in the outbox; `data` is the payload documented for its `type`. */
export interface OutboxEvent {
  /** UUIDv7; also the `webhook-id` receivers de-duplicate on (with the target). */
  id: string
  type: string
  /** ISO 8601, when the change committed. */
  occurredAt: string
  /** The conversation it is about, when it is about one (visibility is decided per target). */
  conversationId: string | null
  data: unknown
}

export type DeliveryResult =
  | { kind: 'delivered' }
  /** Try again later; `retryAfterMs` when the receiver said when (Retry-After). */
  | { kind: 'retry'; error: string; retryAfterMs?: number }
  /** The target no longer exists (e.g. push subscription answered 404/410): drop it, do not retry. */
  | { kind: 'gone'; error: string }

export interface DeliveryChannel {
  /** Stable name stored with each delivery row: 'webhook' | 'push'. */
  readonly name: string
  /** The targets this event goes to, decided once by the instance that claims the event. */
  targets(event: OutboxEvent): Promise<string[]>
  /** One attempt to deliver `event` to `target`; must not throw for receiver failures. */
  deliver(event: OutboxEvent, target: string, attempt: number): Promise<DeliveryResult>
  /**
   * Optional (added with the outbox; a channel without it takes every event): whether it may
   * want an event of `type` at all. Asked on the send path before an event is written, so it
   * must answer at once from memory; a wrong `true` costs a row, a wrong `false` loses the event.
   */
  wants?(type: string): boolean
}
