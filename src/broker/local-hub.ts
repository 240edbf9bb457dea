import { type ChatEvent, channelsOf } from '../protocol/events.js'
import type { Listener } from '../services/ports.js'

/** This instance's listeners by channel: the delivery half of every broker. */
export class LocalHub {
  private readonly byChannel = new Map<string, Set<Listener>>()

  /** Returns true when this is the channel's first listener. */
  add(channel: string, listener: Listener): boolean {
    let set = this.byChannel.get(channel)
    const first = set === undefined
    if (!set) {
      set = new Set()
      this.byChannel.set(channel, set)
    }
    set.add(listener)
    return first
  }

  /** Returns true when the channel has no listener left. */
  remove(channel: string, listener: Listener): boolean {
    const set = this.byChannel.get(channel)
    if (!set) return false
    set.delete(listener)
    if (set.size > 0) return false
    this.byChannel.delete(channel)
    return true
  }

  has(channel: string): boolean {
    return this.byChannel.has(channel)
  }

  channels(): string[] {
    return [...this.byChannel.keys()]
  }

  get channelCount(): number {
    return this.byChannel.size
  }

  deliver(event: ChatEvent, only?: string): void {
    for (const channel of only === undefined ? channelsOf(event) : [only]) {
      const set = this.byChannel.get(channel)
      if (!set) continue
      for (const listener of [...set]) {
        if (typeof listener === 'function') listener(event, channel)
        else listener.onEvent(event, channel)
      }
    }
  }
}
