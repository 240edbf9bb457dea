import { newId } from '../lib/ids.js'
import type { NewOutboxEvent } from '../protocol/outbox-events.js'
import type { Db } from '../store/db.js'
import { insertEvents } from '../store/outbox.js'
import type { DeliveryChannel } from './outbox-channel.js'

/**
 * Writes events to the outbox in the caller's transaction (docs/notifications.md, "The outbox").
 * An event no channel wants (no webhook endpoint takes its type, no push channel) is not written
 * at all: the send path pays nothing while nothing listens. Channels without `wants` take
 * everything. Services call `committed()` after their commit so this instance's worker picks the
 * event up at once instead of at its next poll.
 */
export class Outbox {
  private nudge: () => void = () => {}

  constructor(private readonly channels: readonly DeliveryChannel[]) {}

  /** True when at least one channel may want an event of this type (cheap: asked per message). */
  wants(type: string): boolean {
    return this.channels.some((c) => (c.wants ? c.wants(type) : true))
  }

  /** Inserts the wanted ones among `events` in `tx`, all in one statement. */
  async record(tx: Db, events: NewOutboxEvent[], occurredAt = Date.now()): Promise<void> {
    const wanted = events.filter((e) => this.wants(e.type))
    if (wanted.length === 0) return
    await insertEvents(
      tx,
      wanted.map((e) => ({
        id: newId(),
        type: e.type,
        conversationId: e.conversationId,
        data: e.data,
        occurredAt,
      })),
    )
  }

  /** After a commit that recorded events: wakes this instance's worker. */
  committed(): void {
    this.nudge()
  }

  /** The worker registers its wake-up here. */
  onCommitted(nudge: () => void): void {
    this.nudge = nudge
  }
}
