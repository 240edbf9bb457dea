import { describe, expect, it } from 'vitest'
import type { MessageView } from '../../src/services/views.js'
import { ConversationFeed } from '../../src/ws/feed.js'
import { deferred, drained, live, MemorySource, msg, RecordingSink, range } from '../helpers/feed-fakes.js'

function setup(position = 0, paused = false) {
  const source = new MemorySource()
  const sink = new RecordingSink()
  const feed = new ConversationFeed(position, source, sink, paused)
  return { source, sink, feed }
}

const T1 = '2030-01-01T00:01:00.000Z'
const T2 = '2030-01-01T00:02:00.000Z'
const edit = (seq: number, at: string, content = `edited ${seq} at ${at}`): MessageView =>
  msg(seq, { content, edited_at: at })
const tombstone = (seq: number, at: string): MessageView => msg(seq, { content: '', deleted_at: at })

describe('ConversationFeed.resumeFrom', () => {
  it('at the floor, fills from the position with a single read', async () => {
    const { source, sink, feed } = setup(5)
    source.commitRange(1, 7)
    await feed.resumeFrom(5)
    expect(sink.delivered.map(({ seq, replay }) => [seq, replay])).toEqual([
      [6, true],
      [7, true],
    ])
    expect(source.reads).toEqual([[5, 100]])
  })

  it('ahead of the floor, still fills from the position (nothing older is owed)', async () => {
    const { source, sink, feed } = setup(5)
    source.commitRange(1, 7)
    await feed.resumeFrom(9)
    expect(sink.seqs).toEqual([6, 7])
    expect(source.reads).toEqual([[5, 100]])
  })

  it('at the floor after live messages went out, fills from the position', async () => {
    const { source, sink, feed } = setup(5)
    source.commitRange(1, 7)
    feed.push(live(6))
    await feed.resumeFrom(5)
    expect(sink.contents).toEqual(['live 6', 'stored 7'])
    expect(source.reads).toEqual([[6, 100]])
  })

  it('below the floor with nothing sent yet, moves the cursor back and catches up in order', async () => {
    const { source, sink, feed } = setup(5)
    source.commitRange(1, 7)
    await feed.resumeFrom(2)
    expect(sink.delivered.map(({ seq, replay }) => [seq, replay])).toEqual([
      [3, true],
      [4, true],
      [5, true],
      [6, true],
      [7, true],
    ])
    expect(source.reads).toEqual([[2, 100]])
    expect(feed.position).toBe(7)
    // The new floor is 2: a sync from 1 owes only seq 2, after the live ones.
    await feed.resumeFrom(1)
    expect(sink.seqs).toEqual([3, 4, 5, 6, 7, 2])
  })

  it('moving the cursor back during a fill makes the fill read again from the new position', async () => {
    const { source, sink, feed } = setup(5, true)
    source.commitRange(1, 7)
    source.hold()
    const started = feed.start()
    const resumed = feed.resumeFrom(2)
    source.release()
    await Promise.all([started, resumed])
    expect(sink.seqs).toEqual([3, 4, 5, 6, 7])
    expect(source.reads).toEqual([
      [5, 100],
      [2, 100],
    ])
  })

  it('after live messages went out, sends the older ones after them, each once', async () => {
    const { source, sink, feed } = setup(5)
    source.commitRange(1, 8)
    feed.push(live(6))
    await feed.resumeFrom(2)
    expect(sink.delivered.map(({ seq, replay }) => [seq, replay])).toEqual([
      [6, false],
      [3, true],
      [4, true],
      [5, true],
    ])
    expect(source.reads).toEqual([[2, 3]])
    expect(feed.position).toBe(6)
    // (2, 6] went out: a repeated sync from 2 owes only what is newer than the position.
    await feed.resumeFrom(2)
    expect(sink.seqs).toEqual([6, 3, 4, 5, 7, 8])
    // And a sync from further back owes (0, 2].
    await feed.resumeFrom(0)
    expect(sink.seqs).toEqual([6, 3, 4, 5, 7, 8, 1, 2])
  })

  it('backfills more than one page, reading no further than the floor', async () => {
    const { source, sink, feed } = setup(250)
    source.commitRange(1, 260)
    feed.push(live(251))
    await feed.resumeFrom(0)
    expect(sink.seqs).toEqual([251, ...range(1, 250)])
    expect(source.reads).toEqual([
      [0, 100],
      [100, 100],
      [200, 50],
    ])
  })

  it('a backfill stops at the first message past the floor and when the store has nothing more', async () => {
    const { source, sink, feed } = setup(10)
    source.commit(msg(3), msg(12))
    feed.push(live(11))
    await feed.resumeFrom(2)
    expect(source.reads).toEqual([[2, 8]])
    expect(sink.seqs).toEqual([11, 3])

    const other = setup(10)
    other.source.commit(msg(3))
    other.feed.push(live(11))
    await other.feed.resumeFrom(2)
    expect(other.source.reads).toEqual([
      [2, 8],
      [3, 7],
    ])
    expect(other.sink.seqs).toEqual([11, 3])
  })

  it('paces a backfill by the socket', async () => {
    const { source, sink, feed } = setup(150)
    source.commitRange(1, 150)
    feed.push(live(151))
    const written = deferred()
    sink.pace = (m, replay) => (replay && m.seq === 100 ? written.promise : undefined)
    const resumed = feed.resumeFrom(0)
    await drained()
    expect(sink.seqs).toEqual([151, ...range(1, 100)])
    expect(source.reads).toHaveLength(1)
    written.resolve()
    await resumed
    expect(sink.seqs).toEqual([151, ...range(1, 150)])
    expect(source.reads).toEqual([
      [0, 100],
      [100, 50],
    ])
  })

  it('a backfill stops when the feed closes, during a read or while a page is written', async () => {
    const a = setup(5)
    a.source.commitRange(1, 5)
    a.feed.push(live(6))
    a.source.hold()
    const resumed = a.feed.resumeFrom(2)
    a.feed.close()
    a.source.release()
    await resumed
    expect(a.sink.seqs).toEqual([6])

    const b = setup(150)
    b.source.commitRange(1, 150)
    b.feed.push(live(151))
    const written = deferred()
    b.sink.pace = (m, replay) => (replay && m.seq === 100 ? written.promise : undefined)
    const backfill = b.feed.resumeFrom(0)
    await drained()
    b.feed.close()
    written.resolve()
    await backfill
    expect(b.sink.seqs).toEqual([151, ...range(1, 100)])
    expect(b.source.reads).toHaveLength(1)
  })

  it('a failed backfill is reported and undone, so that a retried sync sends the range again', async () => {
    const { source, sink, feed } = setup(5)
    source.commitRange(1, 5)
    feed.push(live(6))
    const boom = new Error('database unavailable')
    source.failNext(boom)
    await feed.resumeFrom(2)
    expect(sink.errors).toEqual([boom])
    expect(sink.seqs).toEqual([6])
    await feed.resumeFrom(2)
    expect(sink.seqs).toEqual([6, 3, 4, 5])
    expect(sink.errors).toHaveLength(1)
  })
})

describe('ConversationFeed.amend and the newest version', () => {
  it('says "send it now" for a message at or below the position, and "later" for one above', () => {
    const { feed } = setup(5)
    expect(feed.amend(edit(5, T1))).toBe(true)
    expect(feed.amend(edit(3, T1))).toBe(true)
    expect(feed.amend(edit(6, T1))).toBe(false)
  })

  it('an edit of a message not delivered yet goes out in place of the stale store copy', async () => {
    const { source, sink, feed } = setup()
    source.commitRange(1, 2)
    expect(feed.amend(edit(2, T1, 'edited 2'))).toBe(false)
    await feed.fill()
    expect(sink.contents).toEqual(['stored 1', 'edited 2'])
    expect(feed.amend(edit(2, T2))).toBe(true)
  })

  it('an edit of a message not delivered yet goes out in place of its stale live copy', async () => {
    const { sink, feed } = setup()
    feed.amend(edit(2, T1, 'edited 2'))
    for (const s of [1, 2, 3]) feed.push(live(s))
    expect(sink.contents).toEqual(['live 1', 'edited 2', 'live 3'])
  })

  it('an edit of a held message replaces the held copy', async () => {
    const { source, sink, feed } = setup()
    source.commitRange(1, 2)
    feed.push(live(3))
    expect(feed.amend(edit(3, T1, 'edited 3'))).toBe(false)
    await drained()
    expect(sink.contents).toEqual(['stored 1', 'stored 2', 'edited 3'])
  })

  it('a delete of a held message is final: a later edit does not bring it back', async () => {
    const { source, sink, feed } = setup()
    source.commitRange(1, 2)
    feed.push(live(3))
    feed.amend(tombstone(3, T1))
    feed.amend(edit(3, T2))
    await drained()
    expect(sink.delivered.at(-1)?.message).toMatchObject({ seq: 3, content: '', deleted_at: T1 })
  })

  it('a delete is final against a later edit and against the store copy', async () => {
    const { source, sink, feed } = setup()
    source.commit(edit(1, T2))
    feed.amend(tombstone(1, T1))
    feed.amend(edit(1, T2))
    await feed.fill()
    expect(sink.delivered[0]?.message).toMatchObject({ seq: 1, deleted_at: T1 })
  })

  it('a deleted store copy wins over an edit that was announced earlier', async () => {
    const { source, sink, feed } = setup()
    source.commit(tombstone(1, T2))
    feed.amend(edit(1, T1))
    await feed.fill()
    expect(sink.delivered[0]?.message).toMatchObject({ seq: 1, deleted_at: T2 })
  })

  it('of two edits the later one wins, whatever order they arrive in', async () => {
    const a = setup()
    a.source.commitRange(1, 1)
    a.feed.amend(edit(1, T2, 'second'))
    a.feed.amend(edit(1, T1, 'first'))
    await a.feed.fill()
    expect(a.sink.contents).toEqual(['second'])

    const b = setup()
    b.source.commitRange(1, 1)
    b.feed.amend(edit(1, T1, 'first'))
    b.feed.amend(edit(1, T2, 'second'))
    await b.feed.fill()
    expect(b.sink.contents).toEqual(['second'])
  })

  it('a store copy edited later than the announced edit wins; on a tie the copy seen last wins', async () => {
    const a = setup()
    a.source.commit(edit(1, T2, 'store, later'))
    a.feed.amend(edit(1, T1, 'announced, earlier'))
    await a.feed.fill()
    expect(a.sink.contents).toEqual(['store, later'])

    const b = setup()
    b.source.commit(edit(1, T1, 'store copy'))
    b.feed.amend(edit(1, T1, 'announced copy'))
    await b.feed.fill()
    expect(b.sink.contents).toEqual(['store copy'])
  })

  it('an edited message delivered once is never sent again by a later fill', async () => {
    const { source, sink, feed } = setup()
    source.commitRange(1, 2)
    feed.amend(edit(2, T1, 'edited 2'))
    await feed.fill()
    source.commit(msg(3))
    await feed.fill()
    expect(sink.contents).toEqual(['stored 1', 'edited 2', 'stored 3'])
  })
})
