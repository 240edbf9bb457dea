import { describe, expect, it } from 'vitest'
import {
  guardedLookup,
  isBlockedAddress,
  pinnedLookup,
  refuseUrl,
  resolvePublic,
  UnsafeAddressError,
} from '../../src/lib/ssrf.js'
import { signature } from '../../src/services/webhook-signature.js'
import { retryAfterMs } from '../../src/webhooks/http-post.js'

/** The one SSRF module (src/lib/ssrf.ts): webhooks and Web Push endpoints share its blocklist. */
describe('SSRF address policy', () => {
  it.each([
    '127.0.0.1',
    '127.255.255.254',
    '127.255.0.1',
    '10.0.0.1',
    '172.16.0.1',
    '172.16.5.4',
    '172.31.255.255',
    '192.168.1.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '255.255.255.255',
    '::',
    '::1',
    'fe80::1',
    'fe80::1%eth0',
    'fc00::1',
    'fd12:3456::1',
    'ff02::1',
    '::ffff:127.0.0.1',
    '::ffff:7f00:1',
    '::ffff:10.0.0.1',
    '::127.0.0.1',
    '64:ff9b::10.0.0.1',
    '64:ff9b::a9fe:a9fe',
    '64:ff9b::a00:1',
    '192.88.99.1',
    'fec0::1',
    '2002:7f00:0001::1',
    '2002:c0a8:0101::',
    '2001:0:4136:e378::1',
    'not an address',
  ])('blocks %s', (a) => {
    expect(isBlockedAddress(a)).toBe(true)
  })

  it.each([
    '1.1.1.1',
    '8.8.8.8',
    '172.32.0.1',
    '192.169.0.1',
    '100.128.0.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    // NAT64 reaches exactly the IPv4 address it embeds: a public one is public (DNS64 hosts).
    '64:ff9b::8.8.8.8',
    '93.184.216.34',
    '::ffff:93.184.216.34',
    '2002:0808:0808::1',
  ])('allows %s', (a) => {
    expect(isBlockedAddress(a)).toBe(false)
  })

  it('refuses URLs by scheme, credentials and literal host, unless private targets are allowed', () => {
    expect(refuseUrl('https://hooks.example.com/x', false)).toBeUndefined()
    expect(refuseUrl('ftp://hooks.example.com/', false)).toBe('must be http or https')
    expect(refuseUrl('http://u:p@hooks.example.com/', false)).toBe('must not carry credentials')
    expect(refuseUrl('http://0x7f000001/', false)).toMatch(/private/)
    expect(refuseUrl('http://2130706433/', false)).toMatch(/private/)
    expect(refuseUrl('http://[::ffff:169.254.169.254]/', false)).toMatch(/private/)
    expect(refuseUrl('http://LOCALHOST./', false)).toMatch(/this host/)
    expect(refuseUrl('http://127.0.0.1:8080/', true)).toBeUndefined()
    expect(refuseUrl('ftp://127.0.0.1/', true)).toBe('must be http or https')
    expect(refuseUrl('not a url', false)).toBe('is not a URL')
  })

  it('refuses a name that resolves to a blocked address when connecting, and connects to the checked one', async () => {
    const lookup = (allow: boolean) =>
      new Promise<{ err: NodeJS.ErrnoException | null; address: unknown }>((resolve) =>
        guardedLookup(allow)('localhost', { all: false }, (err, address) => resolve({ err, address })),
      )
    const refused = await lookup(false)
    expect(refused.err?.code).toBe('ESSRF')
    const allowed = await lookup(true)
    expect(allowed.err).toBeNull()
    expect(['127.0.0.1', '::1']).toContain(allowed.address)
  })
})

describe('resolvePublic and pinnedLookup (push endpoints)', () => {
  it('takes an IP literal as it is, brackets or not, and refuses a blocked one unless private targets are allowed', async () => {
    expect(await resolvePublic('93.184.216.34', false)).toEqual({ address: '93.184.216.34', family: 4 })
    expect(await resolvePublic('[2606:4700:4700::1111]', false)).toEqual({
      address: '2606:4700:4700::1111',
      family: 6,
    })
    await expect(resolvePublic('127.0.0.1', false)).rejects.toThrow(UnsafeAddressError)
    await expect(resolvePublic('[::ffff:169.254.169.254]', false)).rejects.toThrow(UnsafeAddressError)
    await expect(resolvePublic('[64:ff9b::a9fe:a9fe]', false)).rejects.toThrow(UnsafeAddressError)
    expect(await resolvePublic('127.0.0.1', true)).toEqual({ address: '127.0.0.1', family: 4 })
  })

  it('checks every address a name resolves to', async () => {
    await expect(resolvePublic('localhost', false)).rejects.toThrow(/localhost resolves to .*non-public/)
    expect(['127.0.0.1', '::1']).toContain((await resolvePublic('localhost', true)).address)
  })

  it('connects to the checked address, whatever the name', async () => {
    const target = { address: '93.184.216.34', family: 4 as const }
    const answer = (all: boolean) =>
      new Promise<unknown[]>((resolve) =>
        pinnedLookup(target)('rebinding.example', { all }, (...args: unknown[]) => resolve(args)),
      )
    expect(await answer(false)).toEqual([null, '93.184.216.34', 4])
    expect(await answer(true)).toEqual([null, [target]])
  })
})

describe('webhook helpers', () => {
  it('reads Retry-After in seconds or as a date', () => {
    expect(retryAfterMs('2')).toBe(2000)
    expect(retryAfterMs(undefined)).toBeUndefined()
    expect(retryAfterMs('soon')).toBeUndefined()
    expect(retryAfterMs(new Date(10_000).toUTCString(), 4_000)).toBe(6000)
  })

  it('signs as the Standard Webhooks specification’s example does', () => {
    // The example of https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
    const secret = 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw'
    const body = '{"test": 2432232314}'
    expect(signature(secret, 'msg_p5jXN8AQM9LWM0D4loKWxJek', 1614265330, body)).toBe(
      'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
    )
  })
})
