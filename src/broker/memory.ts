import type { ChatEvent } from '../protocol/events.js'
import type { Broker, Listener } from '../services/ports.js'
import { LocalHub } from './local-hub.js'

/** The default broker: one process, no other instances to reach. */
export class MemoryBroker implements Broker {
  readonly kind = 'memory' as const
  readonly publishFailures = 0
  private readonly hub = new LocalHub()

  publish(event: ChatEvent): void {
    this.hub.deliver(event)
  }

  async subscribe(channel: string, listener: Listener): Promise<() => void> {
    this.hub.add(channel, listener)
    return () => this.unsubscribe(channel, listener)
  }

  unsubscribe(channel: string, listener: Listener): void {
    this.hub.remove(channel, listener)
  }

  healthy(): boolean {
    return true
  }

  async close(): Promise<void> {}
}
