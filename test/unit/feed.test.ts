import { describe, expect, it } from 'vitest'
import { ConversationFeed } from '../../src/ws/feed.js'
import { deferred, drained, live, MemorySource, msg, RecordingSink, range } from '../helpers/feed-fakes.js'

/** A feed at `position`, its store and its socket. */
function setup(position = 0, paused = false) {
  const source = new MemorySource()
  const sink = new RecordingSink()
  // Not paused unless asked: the constructor's default.
  const feed = paused
    ? new ConversationFeed(position, source, sink, true)
    : new ConversationFeed(position, source, sink)
  return { source, sink, feed }
}

describe('ConversationFeed: live messages', () => {
  it('delivers in-order live messages as they come, without reading the store', async () => {
    const { source, sink, feed } = setup()
    for (const s of [1, 2, 3]) feed.push(live(s))
    await drained()
    expect(sink.delivered.map(({ seq, replay, content }) => [seq, replay, content])).toEqual([
      [1, false, 'live 1'],
      [2, false, 'live 2'],
      [3, false, 'live 3'],
    ])
    expect(source.reads).toEqual([])
    expect(feed.position).toBe(3)
  })

  it('ignores a repeat of the last delivered seq and older seqs, and reads nothing for them', async () => {
    const { source, sink, feed } = setup(5)
    feed.push(live(5))
    feed.push(live(4))
    feed.push(live(1))
    await drained()
    expect(sink.delivered).toEqual([])
    expect(source.reads).toEqual([])
    feed.push(live(6))
    feed.push(live(6))
    await drained()
    expect(sink.seqs).toEqual([6])
    expect(source.reads).toEqual([])
    expect(feed.position).toBe(6)
  })

  it('holds a message that arrives past a gap and delivers it after the gap, read from the store', async () => {
    const { source, sink, feed } = setup()
    source.commit(msg(1), msg(2))
    feed.push(live(3))
    await drained()
    expect(sink.delivered.map(({ seq, replay, content }) => [seq, replay, content])).toEqual([
      [1, true, 'stored 1'],
      [2, true, 'stored 2'],
      [3, true, 'live 3'],
    ])
    expect(source.reads).toEqual([[0, 100]])
    expect(feed.position).toBe(3)
  })

  it('reads again when a read started before the gap was committed', async () => {
    const { source, sink, feed } = setup()
    source.commit(msg(1))
    source.hold()
    feed.push(live(3))
    source.commit(msg(2), msg(3))
    source.release()
    await drained()
    expect(sink.contents).toEqual(['stored 1', 'stored 2', 'stored 3'])
    expect(source.reads).toEqual([
      [0, 100],
      [1, 100],
    ])
  })

  it('holds the next live message while a fill runs, and delivers each seq once, in order', async () => {
    const { source, sink, feed } = setup()
    source.commitRange(1, 3)
    source.hold()
    feed.push(live(3))
    feed.push(live(1))
    feed.push(live(2))
    expect(sink.delivered).toEqual([])
    source.release()
    await drained()
    expect(sink.delivered.map(({ seq, replay }) => [seq, replay])).toEqual([
      [1, true],
      [2, true],
      [3, true],
    ])
    expect(source.reads).toHaveLength(1)
  })

  it('never waits for a live delivery to be written', async () => {
    const { sink, feed } = setup()
    sink.pace = () => new Promise<void>(() => {})
    for (const s of [1, 2, 3]) feed.push(live(s))
    await drained()
    expect(sink.seqs).toEqual([1, 2, 3])
  })
})

describe('ConversationFeed: filling gaps from the store', () => {
  it('gives up on a gap after 3 empty reads: the held message is dropped, later ones still flow', async () => {
    const { source, sink, feed } = setup()
    feed.push(live(3))
    await drained()
    expect(source.reads).toEqual([
      [0, 100],
      [0, 100],
      [0, 100],
    ])
    expect(sink.delivered).toEqual([])
    feed.push(live(1))
    feed.push(live(2))
    await drained()
    expect(sink.contents).toEqual(['live 1', 'live 2'])
    expect(source.reads).toHaveLength(3)
  })

  it('counts only consecutive empty reads: a page that made progress resets the count', async () => {
    const { source, sink, feed } = setup()
    source.commit(msg(1))
    feed.push(live(3))
    await drained()
    expect(source.reads).toEqual([
      [0, 100],
      [1, 100],
      [1, 100],
      [1, 100],
    ])
    expect(sink.contents).toEqual(['stored 1'])
  })

  it('reads page after page while pages are full (PAGE = 100)', async () => {
    const { source, sink, feed } = setup(0, true)
    source.commitRange(1, 250)
    await feed.start()
    expect(sink.seqs).toEqual(range(1, 250))
    expect(sink.delivered.every((d) => d.replay)).toBe(true)
    expect(source.reads).toEqual([
      [0, 100],
      [100, 100],
      [200, 100],
    ])
  })

  it('reads once more after a last page that was exactly full', async () => {
    const { source, sink, feed } = setup(0, true)
    source.commitRange(1, 200)
    await feed.start()
    expect(sink.seqs).toEqual(range(1, 200))
    expect(source.reads).toEqual([
      [0, 100],
      [100, 100],
      [200, 100],
    ])
  })

  it('paces a replay: the next page is read only once the last message of a page was written', async () => {
    const { source, sink, feed } = setup(0, true)
    source.commitRange(1, 150)
    const written = deferred()
    sink.pace = (m) => (m.seq === 100 ? written.promise : undefined)
    const started = feed.start()
    await drained()
    expect(sink.seqs).toEqual(range(1, 100))
    expect(source.reads).toHaveLength(1)
    written.resolve()
    await started
    expect(sink.seqs).toEqual(range(1, 150))
    expect(source.reads).toHaveLength(2)
  })

  it('runs one fill at a time', async () => {
    const { source, sink, feed } = setup()
    source.commit(msg(1))
    source.hold()
    const first = feed.fill()
    const second = feed.fill()
    await second
    expect(source.reads).toHaveLength(1)
    source.release()
    await first
    expect(sink.seqs).toEqual([1])
    expect(source.reads).toHaveLength(1)
  })

  it('reports a store error once, drops held messages without retrying, and can fill again later', async () => {
    const { source, sink, feed } = setup()
    const boom = new Error('database unavailable')
    source.commitRange(1, 3)
    source.failNext(boom)
    feed.push(live(3))
    await drained()
    expect(sink.errors).toEqual([boom])
    expect(sink.delivered).toEqual([])
    expect(source.reads).toHaveLength(1)
    expect(feed.position).toBe(0)
    feed.push(live(1))
    await feed.fill()
    expect(sink.contents).toEqual(['live 1', 'stored 2', 'stored 3'])
    expect(sink.errors).toHaveLength(1)
  })

  it('keeps up to 1000 held messages (MAX_HELD) and delivers them after the gap', async () => {
    const { source, sink, feed } = setup()
    source.commit(msg(1))
    source.hold()
    for (const s of range(2, 1001)) feed.push(live(s))
    source.commitRange(2, 1001)
    source.release()
    await drained()
    expect(sink.seqs).toEqual(range(1, 1001))
    expect(sink.contents.slice(0, 2)).toEqual(['stored 1', 'live 2'])
    expect(sink.contents.at(-1)).toBe('live 1001')
    expect(source.reads).toHaveLength(1)
  })

  it('past 1000 held messages drops them all and reads everything back from the store', async () => {
    const { source, sink, feed } = setup()
    source.commit(msg(1))
    source.hold()
    for (const s of range(2, 1002)) feed.push(live(s))
    source.commitRange(2, 1002)
    source.release()
    await drained()
    expect(sink.seqs).toEqual(range(1, 1002))
    expect(sink.contents.every((c) => c.startsWith('stored'))).toBe(true)
    expect(source.reads.map(([after]) => after)).toEqual([
      0, 1, 101, 201, 301, 401, 501, 601, 701, 801, 901, 1001,
    ])
  })

  it('counts only undelivered messages against MAX_HELD while a page is being written', async () => {
    const { source, sink, feed } = setup()
    source.commitRange(1, 100)
    source.hold()
    for (const s of range(2, 1001)) feed.push(live(s))
    const written = deferred()
    sink.pace = (m) => (m.seq === 100 ? written.promise : undefined)
    source.release()
    await drained()
    expect(sink.seqs).toEqual(range(1, 100))
    // 101..1001 are still held (901 of them): one more fits.
    feed.push(live(1002))
    written.resolve()
    await drained()
    expect(sink.seqs).toEqual(range(1, 1002))
    expect(sink.contents.slice(99, 101)).toEqual(['stored 100', 'live 101'])
    // The page was full, so one more read finds nothing newer.
    expect(source.reads).toEqual([
      [0, 100],
      [1002, 100],
    ])
  })
})

describe('ConversationFeed: paused start and close', () => {
  it('a paused feed drops live messages and reads nothing until start(), which replays them in order', async () => {
    const { source, sink, feed } = setup(2, true)
    source.commitRange(1, 5)
    for (const s of [3, 4, 5]) feed.push(live(s))
    await feed.fill()
    await drained()
    expect(sink.delivered).toEqual([])
    expect(source.reads).toEqual([])
    await feed.start()
    expect(sink.delivered.map(({ seq, replay, content }) => [seq, replay, content])).toEqual([
      [3, true, 'stored 3'],
      [4, true, 'stored 4'],
      [5, true, 'stored 5'],
    ])
    feed.push(live(6))
    expect(sink.contents.at(-1)).toBe('live 6')
  })

  it('start() on a feed that is not paused reads nothing', async () => {
    const { source, feed } = setup(0)
    source.commitRange(1, 3)
    await feed.start()
    expect(source.reads).toEqual([])
  })

  it('start() twice replays once', async () => {
    const { source, sink, feed } = setup(0, true)
    source.commitRange(1, 3)
    await feed.start()
    await feed.start()
    expect(sink.seqs).toEqual([1, 2, 3])
    expect(source.reads).toHaveLength(1)
  })

  it('close() stops everything: a read in flight delivers nothing, pushes and fills do nothing', async () => {
    const { source, sink, feed } = setup()
    source.commitRange(1, 3)
    source.hold()
    feed.push(live(3))
    feed.close()
    source.release()
    await drained()
    feed.push(live(1))
    await feed.fill()
    await drained()
    expect(sink.delivered).toEqual([])
    expect(sink.errors).toEqual([])
    expect(source.reads).toHaveLength(1)
    expect(feed.amend(msg(2, { edited_at: '2030-01-02T00:00:00.000Z' }))).toBe(false)
  })

  it('close() while a page is being written reads no further page', async () => {
    const { source, sink, feed } = setup(0, true)
    source.commitRange(1, 250)
    const written = deferred()
    sink.pace = (m) => (m.seq === 100 ? written.promise : undefined)
    const started = feed.start()
    await drained()
    feed.close()
    written.resolve()
    await started
    expect(sink.seqs).toEqual(range(1, 100))
    expect(source.reads).toHaveLength(1)
  })

  it('close() in the middle of a page stops delivering the rest of it', async () => {
    const { source, sink, feed } = setup(0, true)
    source.commitRange(1, 10)
    sink.pace = (m) => {
      if (m.seq === 4) feed.close()
      return undefined
    }
    await feed.start()
    expect(sink.seqs).toEqual([1, 2, 3, 4])
  })
})
