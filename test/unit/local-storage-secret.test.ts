import { mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { localStorageSecret } from '../../src/storage/local.js'

/**
 * The local storage's URL-signing key without JWT_SECRET: made once per DATA_DIR, read by every
 * process sharing it, and never empty (a file created but not yet written by another process, or
 * left empty by a crash, used to be read as an empty key).
 */
describe('localStorageSecret', () => {
  const dirs: string[] = []
  const dataDir = () => {
    const d = mkdtempSync(join(tmpdir(), 'chat-key-'))
    dirs.push(d)
    return d
  }
  afterEach(() => {
    for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
  })

  it('makes a 64-character key once, private to its owner, and reads the same one afterwards', () => {
    const dir = dataDir()
    const key = localStorageSecret(dir, undefined)
    expect(key).toMatch(/^[A-Za-z0-9_-]{64}$/)
    expect(localStorageSecret(dir, undefined)).toBe(key)
    const file = join(dir, 'objects', '.url-signing-key')
    expect(statSync(file).mode & 0o777).toBe(0o600)
    // No draft is left beside it.
    expect(readdirSync(join(dir, 'objects'))).toEqual(['.url-signing-key'])
  })

  it('refuses a key file with no usable key instead of signing with it', () => {
    const dir = dataDir()
    localStorageSecret(dir, undefined)
    writeFileSync(join(dir, 'objects', '.url-signing-key'), '')
    expect(() => localStorageSecret(dir, undefined)).toThrow(/holds no usable key \(0 characters\)/)
  })

  it('uses JWT_SECRET when it is set, and writes nothing', () => {
    const dir = dataDir()
    expect(localStorageSecret(dir, 'from-the-environment')).toBe('from-the-environment')
    expect(readdirSync(dir)).toEqual([])
  })
})
