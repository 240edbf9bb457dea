import { lookup as dnsLookup, type LookupAddress } from 'node:dns'
import { lookup } from 'node:dns/promises'
import { isIP, type LookupFunction } from 'node:net'

/**
 * The one SSRF module: outbound requests to URLs that users or operators hand us (webhooks, Web
 * Push endpoints; docs/notifications.md, "SSRF" and "Registration rules") must not reach this
 * host or its networks, or the server becomes a proxy into them. Blocked: private, loopback,
 * link-local (cloud metadata), unique-local, carrier-grade NAT, multicast, reserved and
 * documentation ranges, in IPv4 and IPv6, including IPv4 carried inside IPv6 (mapped
 * `::ffff:a.b.c.d`, compatible, 6to4 `2002::/16`, and the well-known NAT64 prefix
 * `64:ff9b::/96`, which reaches exactly the IPv4 address it embeds: that address is checked, so
 * public hosts stay reachable from an IPv6-only host behind DNS64). Teredo (its embedded address
 * is obfuscated) is refused outright.
 *
 * Every address a name resolves to is checked, and the connection then goes to the checked
 * address itself (`resolvePublic` + `pinnedLookup`, or `guardedLookup` as an agent's lookup), so a
 * DNS answer that changes between the check and the connection (rebinding) cannot send it
 * elsewhere. Each caller keeps its own policy: which schemes, and whether its ALLOW_PRIVATE
 * setting lifts the address check.
 */

type Range = [prefix: bigint, bits: number]

const v4 = (text: string): bigint =>
  text.split('.').reduce((acc, part) => (acc << 8n) | BigInt(Number(part)), 0n)

const V4_BLOCKED: Range[] = (
  [
    ['0.0.0.0', 8],
    ['10.0.0.0', 8],
    ['100.64.0.0', 10],
    ['127.0.0.0', 8],
    ['169.254.0.0', 16],
    ['172.16.0.0', 12],
    ['192.0.0.0', 24],
    ['192.0.2.0', 24],
    ['192.88.99.0', 24],
    ['192.168.0.0', 16],
    ['198.18.0.0', 15],
    ['198.51.100.0', 24],
    ['203.0.113.0', 24],
    ['224.0.0.0', 4],
    ['240.0.0.0', 4],
  ] as const
).map(([a, bits]) => [v4(a), bits])

const V6_BLOCKED: Range[] = (
  [
    ['::', 128],
    ['::1', 128],
    ['100::', 64],
    ['2001::', 32],
    ['2001:db8::', 32],
    ['fc00::', 7],
    ['fe80::', 10],
    ['fec0::', 10],
    ['ff00::', 8],
  ] as const
).map(([a, bits]) => [v6(a), bits])

/** `64:ff9b::/96` shifted right by 32 bits. */
const NAT64_PREFIX = 0x64ff9bn << 64n

function inRange(value: bigint, width: number, [prefix, bits]: Range): boolean {
  const shift = BigInt(width - bits)
  return value >> shift === prefix >> shift
}

/** An IPv6 address as a 128-bit number (accepts `::` and a trailing dotted IPv4). */
function v6(text: string): bigint {
  let s = text.toLowerCase().split('%')[0] as string
  const dotted = s.match(/(\d+\.\d+\.\d+\.\d+)$/)
  if (dotted) {
    const n = v4(dotted[1] as string)
    s = `${s.slice(0, -(dotted[1] as string).length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`
  }
  const [head = '', tail] = s.split('::')
  const h = head === '' ? [] : head.split(':')
  const t = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t]
  return groups.reduce((acc, g) => (acc << 16n) | BigInt(Number.parseInt(g || '0', 16)), 0n)
}

/** True for any address an outbound request must not reach (see the module comment), or not an address. */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address.split('%')[0] as string)
  if (family === 4) return V4_BLOCKED.some((r) => inRange(v4(address), 32, r))
  if (family !== 6) return true
  const n = v6(address)
  const embedded =
    n >> 32n === 0xffffn || // ::ffff:a.b.c.d (mapped)
    n >> 32n === 0n // ::a.b.c.d (compatible; :: and ::1 are blocked below too)
  const nat64 = n >> 32n === NAT64_PREFIX
  if ((embedded && n > 1n) || nat64) return V4_BLOCKED.some((r) => inRange(n & 0xffffffffn, 32, r))
  if (n >> 112n === 0x2002n) return V4_BLOCKED.some((r) => inRange((n >> 80n) & 0xffffffffn, 32, r))
  return V6_BLOCKED.some((r) => inRange(n, 128, r))
}

/** The URL's host without IPv6 brackets. */
export const hostOf = (url: URL): string => url.hostname.replace(/^\[(.*)\]$/, '$1')

/**
 * The webhook policy for what can be decided without DNS: http or https, no credentials in the
 * URL, and a host that is not a blocked address literal or `localhost`. Names are checked on the
 * address they resolve to, at every delivery (`guardedLookup`). Returns the reason, or undefined.
 */
export function refuseUrl(text: string, allowPrivate: boolean): string | undefined {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return 'is not a URL'
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') return 'must be http or https'
  if (url.username !== '' || url.password !== '') return 'must not carry credentials'
  if (allowPrivate) return undefined
  const host = hostOf(url).toLowerCase().replace(/\.$/, '')
  if (host === 'localhost' || host.endsWith('.localhost')) return 'must not point at this host'
  if (isIP(host) !== 0 && isBlockedAddress(host)) return 'must not point at a private or reserved address'
  return undefined
}

export class UnsafeAddressError extends Error {}

/** The first of `addresses` a request may not reach, unless `allowPrivate`. */
const firstBlocked = (addresses: readonly { address: string }[], allowPrivate: boolean) =>
  allowPrivate ? undefined : addresses.find((a) => isBlockedAddress(a.address))

/**
 * The address to connect to for `hostname` (a URL's, brackets allowed): an IP literal as it is,
 * a name resolved, every address of it checked unless `allowPrivate`. Throws UnsafeAddressError
 * when one is blocked, and the resolver's error (code ENOTFOUND…) when the name does not resolve.
 * Connect with `pinnedLookup` of the result, never to the name again.
 */
export async function resolvePublic(
  hostname: string,
  allowPrivate: boolean,
): Promise<{ address: string; family: 4 | 6 }> {
  const host = hostname.replace(/^\[|\]$/g, '')
  const literal = isIP(host)
  const addresses =
    literal === 0
      ? await lookup(host, { all: true, verbatim: true })
      : [{ address: host, family: literal as 4 | 6 }]
  if (addresses.length === 0) throw new UnsafeAddressError(`${host} resolves to no address`)
  const bad = firstBlocked(addresses, allowPrivate)
  if (bad) throw new UnsafeAddressError(`${host} resolves to ${bad.address}, a non-public address`)
  const first = addresses[0] as { address: string; family: number }
  return { address: first.address, family: first.family === 6 ? 6 : 4 }
}

/** A `lookup` that answers every name with `target` (checked by `resolvePublic`): no second resolution. */
export function pinnedLookup(target: { address: string; family: 4 | 6 }): LookupFunction {
  return ((_host, options, callback) => {
    if ((options as { all?: boolean }).all) callback(null, [target])
    else (callback as (e: null, a: string, f: number) => void)(null, target.address, target.family)
  }) as LookupFunction
}

/**
 * A `lookup` for an HTTP agent: resolves like the system does, then refuses the connection (code
 * ESSRF) when any address is blocked, else connects to the address it checked. Address literals
 * never reach a lookup: check them with `isBlockedAddress` before the request.
 */
export function guardedLookup(allowPrivate: boolean): LookupFunction {
  return (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0)
      const list = addresses ?? []
      const blocked = firstBlocked(list, allowPrivate)
      if (blocked) {
        const refusal = Object.assign(
          new Error(`refused: ${hostname} resolves to ${blocked.address}, a private or reserved address`),
          { code: 'ESSRF' },
        )
        return callback(refusal, '', 0)
      }
      const first = list[0]
      if (!first)
        return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), '', 0)
      if (options.all) return (callback as unknown as (e: null, a: LookupAddress[]) => void)(null, list)
      return callback(null, first.address, first.family)
    })
  }
}
