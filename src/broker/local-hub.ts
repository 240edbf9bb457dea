import type { Listener } from './broker.js'
import { type ChatEvent, channelsOf } from './events.js'

/** This instance's listeners by channel: the delivery half of every broker. */
export class LocalHub {
  private readonly channels = new Map<string, Set<Listener>>()

  /** Returns true when this is the channel's first listener. */
  add(channel: string, listener: Listener): boolean {
    let set = this.channels.get(channel)
    const first = set === undefined
    if (!set) {
      set = new Set()
      this.channels.set(channel, set)
    }
    set.add(listener)
    return first
  }

  /** Returns true when the channel has no listener left. */
  remove(channel: string, listener: Listener): boolean {
    const set = this.channels.get(channel)
    if (!set) return false
    set.delete(listener)
    if (set.size > 0) return false
    this.channels.delete(channel)
    return true
  }

  has(channel: string): boolean {
    return this.channels.has(channel)
  }

  get channelCount(): number {
    return this.channels.size
  }

  deliver(event: ChatEvent, only?: string): void {
    for (const channel of only === undefined ? channelsOf(event) : [only]) {
      const set = this.channels.get(channel)
      if (!set) continue
      for (const listener of [...set]) listener(event, channel)
    }
  }
}
