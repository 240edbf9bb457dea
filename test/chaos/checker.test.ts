import { describe, expect, it } from 'vitest'
import { judgeGaps, owedUpTo, ranges } from '../../chaos/checker.js'
import { Deliveries } from '../../chaos/deliveries.js'
import { Ledger } from '../../chaos/ledger.js'
import { Rng } from '../../chaos/prng.js'
import { FAULT_KINDS, makeSchedule } from '../../chaos/schedule.js'

/**
 * The chaos run's detectors on made-up observations: a checker that cannot fire proves nothing
 * when a run reports zero violations. No servers here; the seeded run is chaos-smoke.test.ts.
 */
const kinds = (l: Ledger) => Object.fromEntries([...l.violations].map(([k, v]) => [k, v.count]))
const G = '01a2c3d4-0000-7000-8000-000000000000'

describe('chaos delivery checks', () => {
  it('flags repeats and steps back as they arrive, and records jumps as gaps', () => {
    const ledger = new Ledger()
    const d = new Deliveries(3, ledger)
    d.join(G)
    for (const seq of [1, 2, 2, 4, 3, 5]) d.onMessage(G, seq, 1)
    expect(kinds(ledger)).toEqual({ duplicate_delivery: 1, out_of_order_delivery: 1 })
    expect(ledger.gaps).toMatchObject([{ user: 3, conv: G, after: 2, got: 4 }])
    expect(d.cursor(G)).toBe(5)
    expect(JSON.parse(d.syncFrame())).toEqual({ type: 'sync', cursors: { [G]: 5 } })
  })

  it('flags a message on the socket that was told of the removal', () => {
    const ledger = new Ledger()
    const d = new Deliveries(1, ledger)
    d.join(G)
    d.onMessage(G, 1, 1)
    d.removed(G)
    d.onMessage(G, 2, 1)
    expect(kinds(ledger)).toEqual({ delivered_after_removal: 1 })
    d.added(G)
    d.onMessage(G, 3, 1)
    expect(kinds(ledger)).toEqual({ delivered_after_removal: 1 })
  })

  it('excuses exactly the seqs committed while the member was out of the group', () => {
    const ledger = new Ledger()
    ledger.episodes.push({ user: 1, conv: G, lo: 10, hi: 14, removedAtMs: 0, seenLive: true })
    // Fine: 11..14 came while user 1 was out.
    ledger.gaps.push({ user: 1, conv: G, after: 10, got: 15, session: 2, atMs: 0 })
    // Not fine: 9 and 10 were committed before the removal began.
    ledger.gaps.push({ user: 1, conv: G, after: 8, got: 15, session: 3, atMs: 0 })
    // Not fine either: another user, no removal.
    ledger.gaps.push({ user: 2, conv: G, after: 3, got: 6, session: 1, atMs: 0 })
    expect(judgeGaps(ledger, () => 'group')).toBe(4)
    expect(kinds(ledger)).toEqual({ missed_around_removal: 1, missed_delivery: 1 })
    expect(ledger.violations.get('missed_around_removal')?.examples[0]).toContain('never got 9-10')
  })

  it('tells a removal lost while the socket was away from one lost on an open socket', () => {
    const ledger = new Ledger()
    ledger.episodes.push({
      user: 1,
      conv: G,
      lo: 10,
      hi: 14,
      removedAtMs: 0,
      seenLive: false,
      refusedCursor: 7,
    })
    ledger.gaps.push({ user: 1, conv: G, after: 7, got: 15, session: 2, atMs: 0 })
    judgeGaps(ledger, () => 'group')
    expect(kinds(ledger)).toEqual({ missed_after_offline_removal: 1 })
  })

  it('tells a socket that did not follow the group after a re-add', () => {
    const ledger = new Ledger()
    ledger.episodes.push({ user: 1, conv: G, lo: 289, hi: 296, removedAtMs: 0, seenLive: true })
    ledger.gaps.push({ user: 1, conv: G, after: 290, got: 300, session: 6, atMs: 0 })
    expect(judgeGaps(ledger, () => 'group')).toBe(3)
    expect(kinds(ledger)).toEqual({ missed_after_readd: 1 })
  })

  it('names a run that ends at the next removal after it, with both facts', () => {
    const ledger = new Ledger()
    ledger.episodes.push({ user: 1, conv: G, lo: 289, hi: 296, removedAtMs: 0, seenLive: true })
    ledger.episodes.push({ user: 1, conv: G, lo: 328, hi: 342, removedAtMs: 0, seenLive: true })
    ledger.gaps.push({ user: 1, conv: G, after: 290, got: 343, session: 6, atMs: 0 })
    expect(judgeGaps(ledger, () => 'group')).toBe(32)
    expect(kinds(ledger)).toEqual({ missed_around_removal: 1 })
    expect(ledger.violations.get('missed_around_removal')?.examples[0]).toMatch(/added back .*; then removed/)
  })

  it('owes a member re-added at the end only what came before its removal', () => {
    const ledger = new Ledger()
    ledger.episodes.push({ user: 1, conv: G, lo: 265, hi: 269, removedAtMs: 0, seenLive: true })
    expect(owedUpTo(ledger, 1, G, 269)).toBe(265)
    expect(owedUpTo(ledger, 1, G, 270)).toBe(270)
    expect(owedUpTo(ledger, 2, G, 269)).toBe(269)
  })

  it('prints seq ranges compactly', () => {
    expect(ranges([1, 2, 3, 5, 7, 8])).toBe('1-3,5,7-8')
  })
})

describe('chaos HTTP and error-frame rules', () => {
  it('a 500 is always a violation; a 503 needs Retry-After during an outage only', () => {
    const ledger = new Ledger()
    ledger.httpAnswer('REST send', 503, {})
    ledger.httpAnswer('REST send', 500, {})
    const outage = ledger.outageStarted('Redis')
    ledger.httpAnswer('login', 503, { 'retry-after': '1' })
    ledger.httpAnswer('login', 503, {})
    ledger.outageEnded(outage)
    ledger.wsError('unavailable', true, 'retry', 1)
    ledger.wsError('internal', true, 'internal error', 1)
    expect(kinds(ledger)).toEqual({
      http_5xx_not_503: 1,
      http_503_without_retry_after: 1,
      ws_error_internal: 1,
    })
  })
})

describe('chaos schedule', () => {
  const shape = { seed: 42, durationMs: 60_000, instances: 2, warmupMs: 8000, quietMs: 8000 }

  it('is a function of the seed', () => {
    expect(makeSchedule(shape)).toEqual(makeSchedule(shape))
    expect(makeSchedule({ ...shape, seed: 43 })).not.toEqual(makeSchedule(shape))
  })

  it('opens with every fault kind once, process faults first on different instances', () => {
    for (let seed = 1; seed <= 20; seed++) {
      const s = makeSchedule({ ...shape, seed })
      expect(new Set(s.slice(0, 5).map((f) => f.kind))).toEqual(new Set(FAULT_KINDS))
      expect(
        s
          .slice(0, 2)
          .map((f) => f.kind)
          .sort(),
      ).toEqual(['kill', 'term'])
      expect(s[0]?.target).not.toBe(s[1]?.target)
      expect(s[0]?.at).toBe(shape.warmupMs)
    }
  })

  it('forks independent streams', () => {
    const a = new Rng(7).fork('a')
    const b = new Rng(7).fork('b')
    expect([a.next(), a.next()]).not.toEqual([b.next(), b.next()])
    expect(new Rng(7).fork('a').next()).toBe(new Rng(7).fork('a').next())
  })
})
