import { describe, expect, it } from 'vitest'
import type { MessageView } from '../../src/protocol/message.js'
import { ConversationFeed } from '../../src/ws/feed.js'
import { msg as stored } from '../helpers/feed-fakes.js'

/**
 * `finishAt`: a member removed at seq R gets every message up to R (from the store when it did not
 * arrive live), nothing after it, then the feed finishes (issue 10, defect 6).
 */
const msg = (seq: number): MessageView => stored(seq, { content: `m${seq}` })

/** A store holding seqs 1..n, as the removed member may read them (up to `readable`). */
function harness(n: number, start: number, opts: { readable?: number; paused?: boolean } = {}) {
  const delivered: number[] = []
  const reads: number[] = []
  const errors: unknown[] = []
  const readable = opts.readable ?? n
  const feed = new ConversationFeed(
    start,
    {
      after: async (after, limit) => {
        reads.push(after)
        const out: MessageView[] = []
        for (let s = after + 1; s <= Math.min(n, readable) && out.length < limit; s++) out.push(msg(s))
        return out
      },
    },
    { deliver: (m) => void delivered.push(m.seq), onError: (err) => void errors.push(err) },
    opts.paused ?? false,
  )
  return { feed, delivered, reads, errors }
}

const finished = (feed: ConversationFeed, seq: number) =>
  new Promise<void>((resolve) => feed.finishAt(seq, resolve))

describe('ConversationFeed.finishAt', () => {
  it('finishes at once when everything up to the removal was delivered', async () => {
    const { feed, delivered, reads } = harness(3, 3)
    await finished(feed, 3)
    expect(delivered).toEqual([])
    expect(reads).toEqual([])
    feed.push(msg(4))
    expect(delivered).toEqual([])
  })

  it('reads what the socket had not received, up to the removal and not past it', async () => {
    const { feed, delivered } = harness(10, 2)
    await finished(feed, 6)
    expect(delivered).toEqual([3, 4, 5, 6])
  })

  it('delivers held messages up to the removal and drops the ones after it', async () => {
    const { feed, delivered } = harness(10, 0, { readable: 0 })
    // A gap: 2 and 3 are held while 1 is missing from what the store gives back.
    feed.push(msg(2))
    feed.push(msg(3))
    feed.push(msg(5))
    const done = finished(feed, 3)
    feed.push(msg(1))
    await done
    expect(delivered).toEqual([1, 2, 3])
  })

  it('delivers nothing after the removal, live or held', async () => {
    const { feed, delivered } = harness(10, 4)
    feed.push(msg(7))
    const done = finished(feed, 6)
    feed.push(msg(5))
    feed.push(msg(8))
    await done
    feed.push(msg(7))
    expect(delivered).toEqual([5, 6])
  })

  it('stops instead of waiting forever when the store has nothing more for the user', async () => {
    const { feed, delivered } = harness(10, 2, { readable: 4 })
    await finished(feed, 8)
    expect(delivered).toEqual([3, 4])
  })

  it('waits for the client while paused, then delivers up to the removal', async () => {
    const { feed, delivered } = harness(10, 0, { paused: true })
    let done = false
    feed.finishAt(3, () => {
      done = true
    })
    await Promise.resolve()
    expect(done).toBe(false)
    await feed.start()
    expect(delivered).toEqual([1, 2, 3])
    expect(done).toBe(true)
  })

  it('keeps the earliest removal when told twice', async () => {
    const { feed, delivered } = harness(10, 0)
    feed.finishAt(5, () => {})
    await finished(feed, 2)
    expect(delivered).toEqual([1, 2])
  })

  it('drops a live message past the removal that arrives while the removal is being finished', async () => {
    const { feed, delivered } = harness(10, 4)
    const done = finished(feed, 6)
    feed.push(msg(7))
    await done
    expect(delivered).toEqual([5, 6])
  })

  it('finishes even when a held message sits past a gap the store cannot fill', async () => {
    const { feed, delivered } = harness(10, 2, { readable: 4 })
    feed.push(msg(6))
    await finished(feed, 8)
    expect(delivered).toEqual([3, 4])
  })

  it('lets a held socket resume from an older cursor before it finishes', async () => {
    const { feed, delivered } = harness(3, 3, { paused: true })
    let done = false
    feed.finishAt(3, () => {
      done = true
    })
    expect(done).toBe(false)
    await feed.resumeFrom(1)
    await feed.start()
    expect(delivered).toEqual([2, 3])
    expect(done).toBe(true)
  })
})
