import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { TypingIndicators } from '../../src/ws/typing.js'

const TTL_MS = 6000
const INTERVAL_MS = 3000

describe('TypingIndicators', () => {
  let relayed: string[]
  let typing: TypingIndicators
  beforeEach(() => {
    vi.useFakeTimers()
    relayed = []
    typing = new TypingIndicators((conv, state) => relayed.push(`${conv}:${state}`), TTL_MS, INTERVAL_MS)
  })
  afterEach(() => {
    vi.useRealTimers()
  })

  it('relays a burst of alternating frames as one start and one stop', () => {
    for (let i = 0; i < 4100; i++) {
      typing.set('c', 'start')
      typing.set('c', 'stop')
    }
    vi.advanceTimersByTime(10 * TTL_MS)
    expect(relayed).toEqual(['c:start', 'c:stop'])
  })

  it('relays a start kept alive by refreshes at most once per interval, and the stop after the TTL', () => {
    for (let t = 0; t < 10_000; t += 500) {
      typing.set('c', 'start')
      vi.advanceTimersByTime(500)
    }
    // Starts at 0, 3 s, 6 s and 9 s; the last refresh (9.5 s) expires at 15.5 s.
    expect(relayed).toEqual(['c:start', 'c:start', 'c:start', 'c:start'])
    vi.advanceTimersByTime(TTL_MS - 501)
    expect(relayed).toHaveLength(4)
    vi.advanceTimersByTime(1)
    expect(relayed).toEqual([...Array(4).fill('c:start'), 'c:stop'])
  })

  it('relays a stop only after a relayed start', () => {
    typing.set('c', 'stop')
    typing.set('c', 'stop')
    expect(relayed).toEqual([])
    typing.set('c', 'start')
    typing.set('c', 'stop')
    typing.set('c', 'stop')
    expect(relayed).toEqual(['c:start', 'c:stop'])
  })

  it('relays a start that follows a stop too soon once the interval has passed, unless a stop came first', () => {
    typing.set('c', 'start')
    typing.set('c', 'stop')
    vi.advanceTimersByTime(1000)
    typing.set('c', 'start')
    expect(relayed).toEqual(['c:start', 'c:stop'])
    vi.advanceTimersByTime(INTERVAL_MS - 1000 - 1)
    expect(relayed).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(relayed).toEqual(['c:start', 'c:stop', 'c:start'])

    typing.set('c', 'stop')
    typing.set('c', 'start')
    typing.set('c', 'stop')
    vi.advanceTimersByTime(10 * TTL_MS)
    expect(relayed).toEqual(['c:start', 'c:stop', 'c:start', 'c:stop'])
  })

  it('turns a stale start into a stop after the TTL, counted from the last refresh', () => {
    typing.set('c', 'start')
    vi.advanceTimersByTime(TTL_MS - 1)
    typing.set('c', 'start')
    vi.advanceTimersByTime(TTL_MS - 1)
    expect(relayed).toEqual(['c:start', 'c:start'])
    vi.advanceTimersByTime(1)
    expect(relayed).toEqual(['c:start', 'c:start', 'c:stop'])
  })

  it('lets a start that was never relayed expire silently', () => {
    const short = new TypingIndicators((conv, state) => relayed.push(`${conv}:${state}`), 1000, INTERVAL_MS)
    short.set('c', 'start')
    short.set('c', 'stop')
    short.set('c', 'start')
    vi.advanceTimersByTime(10 * INTERVAL_MS)
    expect(relayed).toEqual(['c:start', 'c:stop'])
  })

  it('stopAll relays a stop for what peers see typing, and nothing afterwards', () => {
    typing.set('a', 'start')
    typing.set('b', 'start')
    typing.set('b', 'stop')
    typing.set('b', 'start')
    typing.stopAll()
    expect(relayed).toEqual(['a:start', 'b:start', 'b:stop', 'a:stop'])
    vi.advanceTimersByTime(10 * TTL_MS)
    expect(relayed).toHaveLength(4)
  })

  it('throttles each conversation on its own', () => {
    typing.set('a', 'start')
    typing.set('b', 'start')
    typing.set('a', 'stop')
    expect(relayed).toEqual(['a:start', 'b:start', 'a:stop'])
  })
})
