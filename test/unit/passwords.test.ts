import { describe, expect, it } from 'vitest'
import {
  burnVerify,
  hashPassword,
  PASSWORD_MAX,
  PASSWORD_MIN,
  passwordProblems,
  verifyPassword,
} from '../../src/auth/passwords.js'

const messages = (password: string) => passwordProblems(password).map((p) => p.message)

describe('password hashing', () => {
  it('hashes with argon2id (a fresh salt each time) and verifies only the right password', async () => {
    const hash = await hashPassword('Sup3r-secret!')
    expect(hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/)
    expect(await hashPassword('Sup3r-secret!')).not.toBe(hash)
    expect(await verifyPassword(hash, 'Sup3r-secret!')).toBe(true)
    expect(await verifyPassword(hash, 'Sup3r-secret?')).toBe(false)
  })

  it('treats a malformed stored hash as a wrong password instead of throwing', async () => {
    expect(await verifyPassword('not-a-hash', 'Sup3r-secret!')).toBe(false)
    expect(await verifyPassword('', 'Sup3r-secret!')).toBe(false)
  })

  it('burnVerify spends about the time of a real verify (unknown emails cost what wrong passwords do)', async () => {
    const hash = await hashPassword('Sup3r-secret!')
    await burnVerify('warm-up') // the first call also makes the dummy hash
    // Interleaved, best of 5 each, so that load on the machine weighs on both alike.
    let verify = Number.POSITIVE_INFINITY
    let burn = Number.POSITIVE_INFINITY
    for (let i = 0; i < 5; i++) {
      let start = performance.now()
      await verifyPassword(hash, 'wrong-password')
      verify = Math.min(verify, performance.now() - start)
      start = performance.now()
      await burnVerify('wrong-password')
      burn = Math.min(burn, performance.now() - start)
    }
    // A real argon2 verify takes milliseconds; skipping it takes microseconds. Generous bounds.
    expect(burn).toBeGreaterThan(verify / 5)
  })
})

describe('passwordProblems', () => {
  it('accepts a password with upper, lower, digit and special characters, 8 to 128 long', () => {
    expect(passwordProblems('Sup3r-secret!')).toEqual([])
    expect(passwordProblems('Aa1!aaaa')).toEqual([])
    expect(passwordProblems(`Aa1!${'a'.repeat(124)}`)).toEqual([])
    expect(PASSWORD_MIN).toBe(8)
    expect(PASSWORD_MAX).toBe(128)
  })

  it('has length limits at exactly 8 and 128', () => {
    expect(messages('Aa1!aaa')).toEqual(['must be at least 8 characters'])
    expect(messages(`Aa1!${'a'.repeat(125)}`)).toEqual(['must be at most 128 characters'])
  })

  it('names each missing kind of character', () => {
    expect(messages('aaaa1!aa')).toEqual(['must contain an upper-case letter'])
    expect(messages('AAAA1!AA')).toEqual(['must contain a lower-case letter'])
    expect(messages('Aaaaa!aa')).toEqual(['must contain a digit'])
    expect(messages('Aaaaa1aa')).toEqual(['must contain a special character'])
    expect(messages('')).toEqual([
      'must be at least 8 characters',
      'must contain an upper-case letter',
      'must contain a lower-case letter',
      'must contain a digit',
      'must contain a special character',
    ])
  })

  it('counts letters and digits of every script, and whitespace is not a special character', () => {
    expect(messages('Ébène1!x')).toEqual([])
    expect(messages('ÀÉÎÕÜ1!x')).toEqual([])
    expect(messages('ébène١!x')).toEqual(['must contain an upper-case letter'])
    expect(messages('Aa1 aaaa')).toEqual(['must contain a special character'])
    expect(messages('Aa1\taaaa')).toEqual(['must contain a special character'])
    expect(messages('Aa1€aaaa')).toEqual([])
  })

  it('reports problems under the given field, password by default', () => {
    expect(passwordProblems('short')[0]?.field).toBe('password')
    expect(passwordProblems('short', 'new_password').every((p) => p.field === 'new_password')).toBe(true)
  })
})
