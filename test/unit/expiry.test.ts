import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ExpiryWheel } from '../../src/ws/expiry.js'

// Half a second into a second, so a tick and the start of a second never coincide.
const T0 = 1_800_000_000_500
const EXP = 1_800_000_003

describe('ExpiryWheel', () => {
  let ended: { item: string; at: number }[]
  let wheel: ExpiryWheel<string>
  beforeEach(() => {
    vi.useFakeTimers({ now: T0 })
    ended = []
    wheel = new ExpiryWheel((item) => ended.push({ item, at: Date.now() }))
  })
  afterEach(() => {
    wheel.close()
    vi.useRealTimers()
  })

  it('ends an item once its second has begun, never before and at most a second after', () => {
    wheel.add('a', EXP)
    vi.advanceTimersByTime(EXP * 1000 - 1 - T0)
    expect(ended).toEqual([])
    vi.advanceTimersByTime(1001)
    expect(ended).toHaveLength(1)
    expect(ended[0]?.at).toBeGreaterThanOrEqual(EXP * 1000)
    expect(ended[0]?.at).toBeLessThanOrEqual(EXP * 1000 + 1000)
  })

  it('never ends a removed item, and ends a moved one at its new second', () => {
    wheel.add('removed', EXP)
    wheel.add('moved', EXP)
    wheel.add('stays', EXP)
    wheel.remove('removed', EXP)
    wheel.remove('moved', EXP)
    wheel.add('moved', EXP + 5)
    vi.advanceTimersByTime(10_000)
    expect(ended.map((e) => e.item)).toEqual(['stays', 'moved'])
    const moved = ended[1]?.at ?? 0
    expect(moved).toBeGreaterThanOrEqual((EXP + 5) * 1000)
    expect(moved).toBeLessThanOrEqual((EXP + 5) * 1000 + 1000)
  })

  it('ends an item whose second has already passed at the next tick', () => {
    wheel.add('late', EXP - 3600)
    vi.advanceTimersByTime(1000)
    expect(ended).toEqual([{ item: 'late', at: T0 + 1000 }])
  })

  it('ends every item after a stall longer than the seconds it has items for', () => {
    for (let i = 0; i < 5; i++) wheel.add(`s${i}`, EXP + i * 100)
    vi.setSystemTime((EXP + 1000) * 1000)
    vi.advanceTimersByTime(1000)
    expect(ended.map((e) => e.item)).toEqual(['s0', 's1', 's2', 's3', 's4'])
  })
})
