import { describe, expect, it } from 'vitest'
import { ConversationFeed } from '../../src/ws/feed.js'
import { live, MemorySource, msg, RecordingSink } from '../helpers/feed-fakes.js'

/** Two races the mutation run surfaced in ConversationFeed (each failed before its fix). */
describe('ConversationFeed races', () => {
  it('sends the edited version of a held message even when the fill read it before the edit', async () => {
    const source = new MemorySource()
    const sink = new RecordingSink()
    const feed = new ConversationFeed(0, source, sink)
    source.commitRange(1, 3)
    source.hold()
    // 3 arrives live past a gap: it is held and a fill starts (its read is waiting).
    feed.push(live(3))
    const edited = msg(3, { content: 'edited 3', edited_at: '2030-01-01T00:01:00.000Z' })
    // Not delivered yet: no update frame now; the edited version must go out in its turn.
    expect(feed.amend(edited)).toBe(false)
    source.release()
    await feed.fill()
    await new Promise((resolve) => setImmediate(resolve))
    expect(sink.contents).toEqual(['stored 1', 'stored 2', 'edited 3'])
  })

  it('leaves no gap when two overlapping syncs race a failed backfill', async () => {
    const source = new MemorySource()
    const sink = new RecordingSink()
    const feed = new ConversationFeed(5, source, sink)
    source.commitRange(1, 5)
    // A live message went out before the client's sync: older ones are backfilled after it.
    feed.push(live(6))
    source.hold()
    source.failNext(new Error('database unavailable'))
    const first = feed.resumeFrom(3)
    const second = feed.resumeFrom(1)
    source.release()
    await Promise.all([first, second])
    expect(sink.seqs).toEqual([6, 2, 3])
    // The client retries the failed sync: what the failed backfill never sent must come now.
    await feed.resumeFrom(3)
    expect(sink.seqs).toEqual([6, 2, 3, 4, 5])
  })
})
