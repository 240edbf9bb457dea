import { describe, expect, it } from 'vitest'
import { ConversationFeed } from '../../src/ws/feed.js'
import { drained, live, MemorySource, RecordingSink } from '../helpers/feed-fakes.js'

/**
 * `whenDelivered`: an event about a message (reactions, thread, pin) goes out after that message
 * and never when the socket never gets it (issue 14, docs/architecture.md).
 */
describe('ConversationFeed.whenDelivered', () => {
  const setup = (start: number) => {
    const source = new MemorySource()
    const sink = new RecordingSink()
    const log: string[] = []
    const feed = new ConversationFeed(start, source, {
      deliver: (m, replay) => {
        log.push(`message ${m.seq}`)
        return sink.deliver(m, replay)
      },
      onError: (e) => sink.onError(e),
    })
    return { source, sink, feed, log }
  }

  it('sends at once for a message the socket has', () => {
    const { feed, log } = setup(5)
    feed.whenDelivered(5, () => log.push('event 5'))
    expect(log).toEqual(['event 5'])
  })

  it('holds an event about a message not delivered yet until right after it, in arrival order', async () => {
    const { source, feed, log } = setup(0)
    source.commitRange(1, 2)
    feed.whenDelivered(2, () => log.push('a about 2'))
    feed.whenDelivered(2, () => log.push('b about 2'))
    feed.push(live(2))
    await drained()
    expect(log).toEqual(['message 1', 'message 2', 'a about 2', 'b about 2'])
    feed.push(live(3))
    expect(log.at(-1)).toBe('message 3')
  })

  it('drops events about messages past a removal, and all of them on close', async () => {
    const { source, feed, log } = setup(0)
    source.commitRange(1, 4)
    feed.whenDelivered(4, () => log.push('event 4'))
    feed.whenDelivered(2, () => log.push('event 2'))
    feed.finishAt(2, () => log.push('finished'))
    await drained()
    expect(log).toEqual(['message 1', 'message 2', 'event 2', 'finished'])
    feed.whenDelivered(9, () => log.push('event 9'))
    feed.push(live(9))
    expect(log.at(-1)).toBe('finished')
  })
})
