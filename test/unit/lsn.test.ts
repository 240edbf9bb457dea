import { describe, expect, it } from 'vitest'
import { parseLsn } from '../../src/store/read-replica.js'

describe('parseLsn', () => {
  it('reads a pg_lsn as bytes, so positions compare as numbers', () => {
    expect(parseLsn('0/0')).toBe(0n)
    expect(parseLsn('0/3016060')).toBe(0x3016060n)
    expect(parseLsn('1/0')).toBe(1n << 32n)
    // Past 2^53: a plain number would lose the low bytes the comparison needs.
    expect(parseLsn('FFFFFFFF/FFFFFFFF')).toBe((1n << 64n) - 1n)
    expect(parseLsn('16/B374D848') > parseLsn('16/B374D847')).toBe(true)
    expect(parseLsn('A/0') > parseLsn('9/FFFFFFFF')).toBe(true)
  })
})
