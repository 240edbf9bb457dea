import { describe, expect, it } from 'vitest'
import { newId } from '../../src/lib/ids.js'
import { Outbox } from '../../src/services/outbox.js'
import type { DeliveryChannel } from '../../src/services/outbox-channel.js'
import { OutboxWorker } from '../../src/services/outbox-worker.js'
import {
  backlog,
  claimDeliveries,
  claimEvents,
  cleanup,
  deliveriesOf,
  finishExpansion,
  insertEvents,
  type StoredEvent,
  settle,
  settleMany,
} from '../../src/store/outbox.js'
import { DRIVERS } from '../helpers/app.js'
import { commit, makeGroup, makeUsers, req, useStore } from '../helpers/store.js'

const event = (type = 'user.deleted'): StoredEvent => ({
  id: newId(),
  type,
  conversationId: null,
  occurredAt: Date.now(),
  data: { user_id: newId(), note: 'ünïcode "quoted"' },
})

/** A channel taking every event, for the recorder. */
const anyChannel: DeliveryChannel = {
  name: 'test',
  targets: async () => [],
  deliver: async () => ({ kind: 'delivered' }),
}

/**
 * The outbox's SQL on PostgreSQL and on PGlite: events only exist if their transaction commits,
 * claims are leases that never hand one row to two claimants at once, stale outcomes change
 * nothing, retries end dead after the maximum age, and cleanup bounds the tables. Each test
 * finishes the rows it made, so the next one's claims see only its own.
 */
describe.each(DRIVERS)('outbox store on %s', (driver) => {
  const store = useStore(driver)

  it('writes events only with the transaction that made them, in one statement with the message batch', async () => {
    const e = event()
    await expect(
      store.db.transaction(async (tx) => {
        await insertEvents(tx, [e])
        throw new Error('rolled back')
      }),
    ).rejects.toThrow('rolled back')
    expect(await claimEvents(store.db, 100, 60_000)).toEqual([])

    const [u, v] = await makeUsers(store.db, 2)
    const c = await makeGroup(store.db, u, [v])
    const outbox = new Outbox([anyChannel])
    await store.db.transaction(async (tx) => {
      await commit(tx, [req(u.id, c, 'one'), req(v.id, c, 'two')])
      await outbox.record(tx, [
        { type: 'user.deleted', conversationId: null, data: { user_id: u.id } },
        { type: 'user.deleted', conversationId: null, data: { user_id: v.id } },
      ])
    })
    const claimed = await claimEvents(store.db, 100, 60_000)
    expect(claimed.map((x) => x.data)).toEqual([{ user_id: u.id }, { user_id: v.id }])
    await finishExpansion(
      store.db,
      claimed.map((x) => x.id),
      [],
    )
    // An outbox no channel wants writes nothing.
    await store.db.transaction((tx) =>
      new Outbox([]).record(tx, [{ type: 'user.deleted', conversationId: null, data: { user_id: u.id } }]),
    )
    expect(await claimEvents(store.db, 100, 60_000)).toEqual([])
  })

  it('leases events and deliveries: a leased row is not claimed again until its lease ends', async () => {
    const e = event('message.created')
    await insertEvents(store.db, [e])
    const [claimed] = await claimEvents(store.db, 100, 60_000)
    expect(claimed).toMatchObject({ id: e.id, type: e.type, data: e.data })
    expect(Math.abs((claimed?.occurredAt ?? 0) - e.occurredAt)).toBeLessThan(2)
    expect(await claimEvents(store.db, 100, 60_000)).toEqual([])

    await finishExpansion(
      store.db,
      [e.id],
      ['a', 'b', 'c', 'd'].map((target) => ({ eventId: e.id, channel: 'webhook', target })),
    )
    // Expanding again (an instance whose lease ran out) adds nothing.
    await finishExpansion(store.db, [e.id], [{ eventId: e.id, channel: 'webhook', target: 'a' }])
    expect(await deliveriesOf(store.db, e.id)).toHaveLength(4)
    expect((await backlog(store.db)).pending).toBe(4)

    // Two claims at once (two instances): disjoint, and together all of them.
    const [one, two] = await Promise.all([
      claimDeliveries(store.db, 2, 60_000),
      claimDeliveries(store.db, 2, 60_000),
    ])
    const keys = [...(one ?? []), ...(two ?? [])].map((d) => d.target).sort()
    expect(keys).toEqual(['a', 'b', 'c', 'd'])
    expect([...(one ?? []), ...(two ?? [])].every((d) => d.attempt === 1 && d.event.id === e.id)).toBe(true)
    expect(await claimDeliveries(store.db, 10, 60_000)).toEqual([])

    const d = (target: string, attempt: number) => ({ eventId: e.id, channel: 'webhook', target, attempt })
    expect(await settle(store.db, d('a', 1), { kind: 'delivered' })).toBe('delivered')
    expect(await settle(store.db, d('a', 1), { kind: 'delivered' })).toBeUndefined()
    expect(await settle(store.db, d('b', 1), { kind: 'gone', error: 'deleted' })).toBe('gone')
    const retry = { kind: 'retry' as const, error: 'HTTP 500', delayMs: 0, maxAgeMs: 3_600_000 }
    expect(await settle(store.db, d('c', 1), retry)).toBe('pending')
    expect(await settle(store.db, d('d', 1), { ...retry, maxAgeMs: 0 })).toBe('dead')

    const again = await claimDeliveries(store.db, 10, 60_000)
    expect(again.map((x) => [x.target, x.attempt])).toEqual([['c', 2]])
    // The first attempt's late outcome (its lease ran out, another instance took it) changes nothing.
    expect(await settle(store.db, d('c', 1), { kind: 'delivered' })).toBeUndefined()
    expect(await settle(store.db, d('c', 2), { kind: 'delivered' })).toBe('delivered')
    expect(await deliveriesOf(store.db, e.id)).toEqual([
      { channel: 'webhook', target: 'a', status: 'delivered', attempts: 1, lastError: null },
      { channel: 'webhook', target: 'b', status: 'gone', attempts: 1, lastError: 'deleted' },
      { channel: 'webhook', target: 'c', status: 'delivered', attempts: 2, lastError: null },
      { channel: 'webhook', target: 'd', status: 'dead', attempts: 1, lastError: 'HTTP 500' },
    ])
    expect(await backlog(store.db)).toEqual({ pending: 0, oldestAgeSec: 0 })
  })

  it('claims an expired lease again, and counts what is pending and how old it is', async () => {
    const e = event()
    await insertEvents(store.db, [{ ...e, occurredAt: Date.now() - 5000 }])
    expect((await claimEvents(store.db, 100, 0)).map((x) => x.id)).toEqual([e.id])
    expect((await claimEvents(store.db, 100, 60_000)).map((x) => x.id)).toEqual([e.id])
    const pending = await backlog(store.db)
    expect(pending.pending).toBe(1)
    expect(pending.oldestAgeSec).toBeGreaterThan(4)
    await finishExpansion(store.db, [e.id], [{ eventId: e.id, channel: 'webhook', target: 'x' }])
    expect((await claimDeliveries(store.db, 10, 0)).map((x) => x.attempt)).toEqual([1])
    const [retaken] = await claimDeliveries(store.db, 10, 60_000)
    if (!retaken) throw new Error('the expired lease was not claimed again')
    expect(retaken.attempt).toBe(2)
    expect(await settle(store.db, retaken, { kind: 'delivered' })).toBe('delivered')
  })

  it('cleans up finished deliveries and events with nothing left, keeping dead ones longer', async () => {
    const e = event()
    await insertEvents(store.db, [e])
    await claimEvents(store.db, 100, 60_000)
    await finishExpansion(
      store.db,
      [e.id],
      [
        { eventId: e.id, channel: 'webhook', target: 'ok' },
        { eventId: e.id, channel: 'webhook', target: 'bad' },
      ],
    )
    const claimed = await claimDeliveries(store.db, 10, 60_000)
    for (const c of claimed) {
      await settle(
        store.db,
        c,
        c.target === 'ok' ? { kind: 'delivered' } : { kind: 'retry', error: 'x', delayMs: 0, maxAgeMs: 0 },
      )
    }
    expect(await cleanup(store.db, 0, 3_600_000)).toBeGreaterThanOrEqual(1)
    expect((await deliveriesOf(store.db, e.id)).map((d) => d.status)).toEqual(['dead'])
    await cleanup(store.db, 0, 0)
    expect(await deliveriesOf(store.db, e.id)).toEqual([])
    expect(await claimEvents(store.db, 100, 60_000)).toEqual([])
    expect((await backlog(store.db)).pending).toBe(0)
  })

  it('claims the deliveries it expands for the expanding worker, and never the same one twice', async () => {
    const e = event()
    await insertEvents(store.db, [e])
    await claimEvents(store.db, 100, 60_000)
    const keys = ['a', 'b', 'c'].map((target) => ({ eventId: e.id, channel: 'webhook', target }))
    const mine = await finishExpansion(store.db, [e.id], keys, { count: 2, leaseMs: 60_000 })
    expect(mine.map((k) => k.target)).toEqual(['a', 'b'])
    // The third is due for anyone; the two claimed are leased, so no other claimant sees them.
    expect((await claimDeliveries(store.db, 10, 60_000)).map((d) => [d.target, d.attempt])).toEqual([
      ['c', 1],
    ])
    // An instance whose event lease ran out expands the same event again: nothing new to start.
    expect(await finishExpansion(store.db, [e.id], keys, { count: 3, leaseMs: 60_000 })).toEqual([])
    await settleMany(
      store.db,
      keys.map((k) => ({ ...k, attempt: 1, outcome: { kind: 'delivered' as const } })),
    )
    expect((await deliveriesOf(store.db, e.id)).map((d) => [d.target, d.status, d.attempts])).toEqual([
      ['a', 'delivered', 1],
      ['b', 'delivered', 1],
      ['c', 'delivered', 1],
    ])
  })

  it('records a batch of outcomes of every kind in one statement, skipping stale attempts', async () => {
    const e = event()
    await insertEvents(store.db, [{ ...e, occurredAt: Date.now() }])
    await claimEvents(store.db, 100, 60_000)
    const targets = ['ok', 'gone', 'later', 'dead', 'stale']
    await finishExpansion(
      store.db,
      [e.id],
      targets.map((target) => ({ eventId: e.id, channel: 'webhook', target })),
    )
    const claimed = await claimDeliveries(store.db, 10, 60_000)
    expect(claimed).toHaveLength(5)
    const at = (t: string) => claimed.find((c) => c.target === t) as (typeof claimed)[number]
    const statuses = await settleMany(store.db, [
      { ...at('ok'), outcome: { kind: 'delivered' } },
      { ...at('gone'), outcome: { kind: 'gone', error: 'HTTP 410' } },
      { ...at('later'), outcome: { kind: 'retry', error: 'HTTP 500', delayMs: 60_000, maxAgeMs: 3_600_000 } },
      { ...at('dead'), outcome: { kind: 'retry', error: 'timed out', delayMs: 0, maxAgeMs: 0 } },
      { ...at('stale'), attempt: 7, outcome: { kind: 'delivered' } },
    ])
    expect(Object.fromEntries([...statuses].map(([k, v]) => [k.split(' ')[2], v]))).toEqual({
      ok: 'delivered',
      gone: 'gone',
      later: 'pending',
      dead: 'dead',
    })
    const rows = await deliveriesOf(store.db, e.id)
    expect(rows.map((r) => [r.target, r.status, r.lastError])).toEqual([
      ['dead', 'dead', 'timed out'],
      ['gone', 'gone', 'HTTP 410'],
      ['later', 'pending', 'HTTP 500'],
      ['ok', 'delivered', null],
      ['stale', 'pending', null],
    ])
    // `later` waits its delay; `stale` (its outcome ignored) is still leased: nothing is due now.
    expect(await claimDeliveries(store.db, 10, 60_000)).toEqual([])
    // The current attempt's outcome is recorded.
    expect(await settle(store.db, at('stale'), { kind: 'delivered' })).toBe('delivered')
    await settle(store.db, at('later'), { kind: 'gone', error: 'done' })
  })

  it('expands an event only through the channels that want its type, and delivers it through them', async () => {
    const asked: string[] = []
    const delivered: string[] = []
    const everything: DeliveryChannel = {
      name: 'all',
      targets: async () => ['t1', 't2'],
      deliver: async (e, target) => {
        delivered.push(`${e.type} ${target}`)
        return { kind: 'delivered' }
      },
    }
    // Like push with no browser subscribed: wants nothing, so its (costly) targets are never read.
    const picky: DeliveryChannel = {
      name: 'picky',
      wants: () => false,
      targets: async (e) => {
        asked.push(e.id)
        return ['p']
      },
      deliver: async () => ({ kind: 'delivered' }),
    }
    const outbox = new Outbox([everything, picky])
    const worker = new OutboxWorker(
      store.db,
      [everything, picky],
      {
        pollMs: 20,
        batchSize: 3,
        maxInFlight: 2,
        perTarget: 1,
        attemptTimeoutMs: 5000,
        retryBaseMs: 10,
        retryMaxDelayMs: 100,
        maxAgeMs: 60_000,
        keepDeliveredMs: 3_600_000,
        keepDeadMs: 3_600_000,
        cleanupEveryMs: 3_600_000,
      },
      outbox,
    )
    const events = Array.from({ length: 5 }, () => event())
    await insertEvents(store.db, events)
    worker.start()
    try {
      await expect.poll(() => worker.count('all', 'delivered'), { timeout: 10_000 }).toBe(10)
    } finally {
      await worker.stop()
    }
    expect(asked).toEqual([])
    expect(delivered.sort()).toEqual(events.flatMap(() => ['user.deleted t1', 'user.deleted t2']).sort())
    for (const e of events) {
      expect(
        (await deliveriesOf(store.db, e.id)).map((d) => [d.channel, d.target, d.status, d.attempts]),
      ).toEqual([
        ['all', 't1', 'delivered', 1],
        ['all', 't2', 'delivered', 1],
      ])
    }
  })
})
