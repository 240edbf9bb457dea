import { describe, expect, it } from 'vitest'
import { MemorySendRate } from '../../src/broker/memory-stores.js'

/** How many of `n` sends at instant `at` the bucket lets through. */
const takeMany = (rate: MemorySendRate, user: string, n: number, at: number) =>
  Array.from({ length: n }, () => rate.takeAt(user, at)).filter(Boolean).length

describe('MemorySendRate (token bucket)', () => {
  it('lets a new user send `burst` messages at once, then refuses', () => {
    const rate = new MemorySendRate(2, 5)
    expect(takeMany(rate, 'u', 7, 1_000)).toBe(5)
    expect(rate.takeAt('u', 1_000)).toBe(false)
  })

  it('refills `perSec` tokens a second, fractions included', () => {
    const rate = new MemorySendRate(2, 5)
    takeMany(rate, 'u', 5, 0)
    expect(rate.takeAt('u', 499)).toBe(false) // 0.998 of a token
    expect(rate.takeAt('u', 500)).toBe(true) // 0.998 + 0.002 = 1
    expect(rate.takeAt('u', 500)).toBe(false)
    expect(takeMany(rate, 'u', 10, 2_000)).toBe(3)
  })

  it('never holds more than `burst` tokens however long the user was idle', () => {
    const rate = new MemorySendRate(2, 5)
    rate.takeAt('u', 0)
    expect(takeMany(rate, 'u', 20, 3_600_000)).toBe(5)
  })

  it('keeps one bucket per user', () => {
    const rate = new MemorySendRate(1, 2)
    expect(takeMany(rate, 'a', 3, 0)).toBe(2)
    expect(takeMany(rate, 'b', 3, 0)).toBe(2)
    expect(rate.takeAt('a', 0)).toBe(false)
  })

  it('take() uses the clock', async () => {
    const rate = new MemorySendRate(1, 1)
    expect(await rate.take('u')).toBe(true)
    expect(await rate.take('u')).toBe(false)
  })

  const bucketCount = (rate: MemorySendRate) =>
    // White-box: the map is private, and its size is what the sweep exists for.
    (rate as unknown as { buckets: Map<string, unknown> }).buckets.size

  it('past 100,000 buckets drops those idle long enough to be full again (burst / perSec)', () => {
    const rate = new MemorySendRate(2, 10) // full again 5 s after the last send
    for (let i = 0; i < 100_000; i++) rate.takeAt(`idle-${i}`, 0)
    expect(bucketCount(rate)).toBe(100_000)
    rate.takeAt('newcomer', 5_001)
    expect(bucketCount(rate)).toBe(1)
  })

  it('sweeps only when a new bucket takes the count past 100,000', () => {
    const rate = new MemorySendRate(2, 10)
    for (let i = 0; i < 99_999; i++) rate.takeAt(`idle-${i}`, 0)
    rate.takeAt('newcomer', 60_000)
    expect(bucketCount(rate)).toBe(100_000)
    rate.takeAt('idle-0', 60_000)
    expect(bucketCount(rate)).toBe(100_000)
  })

  it('a sweep keeps a bucket that is still refilling, so its debt is not forgiven', () => {
    const rate = new MemorySendRate(2, 10)
    expect(takeMany(rate, 'hot', 10, 0)).toBe(10)
    for (let i = 0; i < 100_000; i++) rate.takeAt(`user-${i}`, 0)
    rate.takeAt('newcomer', 2_500)
    expect(bucketCount(rate)).toBe(100_002)
    // "hot" has 5 tokens at t=2.5 s, not a fresh 10.
    expect(takeMany(rate, 'hot', 20, 2_500)).toBe(5)
  })
})
