import {
  ChatError,
  type DiscontinuityEvent,
  MemoryCursorStore,
  type Message,
  type ResyncedEvent,
} from '@chat-api/client'
import { describe, expect, it } from 'vitest'
import { Delivery } from '../../client/src/delivery.js'
import { msg as stored } from '../helpers/feed-fakes.js'

/**
 * The delivery layer's ordering rules on their own: what arrives (live, out of order, twice)
 * against what history holds. The end-to-end checks of the same guarantees run against the real
 * server in sdk-faults.test.ts; these pin the gap-fill and resume-failure paths, which a healthy
 * server rarely takes.
 */
const C = '0190a000-0000-7000-8000-000000000001'

/** A stored message of conversation C (the server's view and the SDK's Message are one shape). */
const msg = (seq: number): Message =>
  stored(seq, { conversation_id: C, content: `m${seq}`, created_at: new Date(seq * 1000).toISOString() })

function setup(historyUpTo: number, opts: { failFirst?: ChatError; pageSize?: number } = {}) {
  const history = Array.from({ length: historyUpTo }, (_, i) => msg(i + 1))
  const delivered: number[] = []
  const resynced: ResyncedEvent[] = []
  const discontinuities: DiscontinuityEvent[] = []
  const reads: number[] = []
  let fail = opts.failFirst
  let release: (() => void) | undefined
  let gate: Promise<void> | undefined
  const store = new MemoryCursorStore()
  const delivery = new Delivery({
    store,
    after: async (_id, afterSeq) => {
      reads.push(afterSeq)
      if (gate) await gate
      if (fail) {
        const err = fail
        fail = undefined
        throw err
      }
      const items = history.filter((m) => m.seq > afterSeq).slice(0, opts.pageSize ?? 100)
      const lastItem = items[items.length - 1]
      return { items, more: lastItem !== undefined && lastItem.seq < historyUpTo }
    },
    deliver: (_id, m) => delivered.push(m.seq),
    resynced: (e) => resynced.push(e),
    discontinuity: (e) => discontinuities.push(e),
    error: () => {},
    retryDelay: () => 1,
  })
  return {
    delivery,
    store,
    delivered,
    resynced,
    discontinuities,
    reads,
    /** Holds history reads until `open()`: messages that arrive meanwhile must wait in order. */
    hold: () => {
      gate = new Promise((r) => {
        release = r
      })
    },
    open: () => {
      gate = undefined
      release?.()
    },
  }
}

/** Waits for running gap fills and cursor writes. */
const settle = (d: Delivery) => d.flushed()

describe('Delivery', () => {
  it('delivers in order and drops duplicates', async () => {
    const s = setup(5)
    await s.delivery.load('u')
    s.delivery.baseline(C, 0)
    for (const seq of [1, 2, 2, 1, 3]) s.delivery.receive(C, msg(seq))
    expect(s.delivered).toEqual([1, 2, 3])
    await settle(s.delivery)
    expect(s.store.load('u')).toEqual({ [C]: 3 })
  })

  it('fills a gap from history, holding what arrives meanwhile, then goes on in order', async () => {
    const s = setup(8, { pageSize: 2 })
    await s.delivery.load('u')
    s.delivery.baseline(C, 2)
    s.hold()
    s.delivery.receive(C, msg(6))
    s.delivery.receive(C, msg(4))
    s.delivery.receive(C, msg(7))
    s.delivery.receive(C, msg(6))
    expect(s.delivered).toEqual([])
    s.open()
    await settle(s.delivery)
    s.delivery.receive(C, msg(8))
    s.delivery.receive(C, msg(9))
    expect(s.delivered).toEqual([3, 4, 5, 6, 7, 8, 9])
    expect(s.resynced).toEqual([{ conversationId: C, fromSeq: 2, toSeq: 8, reason: 'gap' }])
  })

  it('after the server could not resume, catches up from history (resynced: resume_failed)', async () => {
    const s = setup(10, { failFirst: new ChatError('network', 'offline') })
    await s.delivery.load('u')
    s.delivery.baseline(C, 4)
    await s.delivery.catchUp('resume_failed')
    expect(s.delivered).toEqual([5, 6, 7, 8, 9, 10])
    // The first read failed (transient) and was retried from the same cursor.
    expect(s.reads.slice(0, 2)).toEqual([4, 4])
    expect(s.resynced).toEqual([{ conversationId: C, fromSeq: 4, toSeq: 10, reason: 'resume_failed' }])
  })

  it('keeps held messages when history refuses for good, and delivers them once the gap closes', async () => {
    const s = setup(6, { failFirst: new ChatError('forbidden', 'no', 403) })
    await s.delivery.load('u')
    s.delivery.baseline(C, 1)
    s.delivery.receive(C, msg(3))
    await settle(s.delivery)
    expect(s.delivered).toEqual([])
    s.delivery.receive(C, msg(2))
    expect(s.delivered).toEqual([2, 3])
  })

  it('resets a cursor ahead of the server and reports the discontinuity', async () => {
    const s = setup(3)
    s.store.set('u', C, 9)
    await s.delivery.load('u')
    s.delivery.baseline(C, 3)
    expect(s.discontinuities).toEqual([{ conversationId: C, reason: 'cursor_ahead', atSeq: 3 }])
    s.delivery.receive(C, msg(4))
    expect(s.delivered).toEqual([4])
  })

  it('forgets a conversation the user left, and reports where delivery stopped', async () => {
    const s = setup(3)
    await s.delivery.load('u')
    s.delivery.baseline(C, 0)
    s.delivery.receive(C, msg(1))
    s.delivery.forget(C, true)
    expect(s.discontinuities).toEqual([{ conversationId: C, reason: 'removed', atSeq: 1 }])
    expect(s.delivery.syncCursors()).toEqual({})
    await settle(s.delivery)
    expect(s.store.load('u')).toEqual({})
  })
})
