import { isIP } from 'node:net'

/**
 * SSRF policy for outbound URLs (webhooks; docs/notifications.md, "SSRF"): only http(s), and
 * no address inside the host or its networks: private, loopback, link-local, unique-local,
 * carrier-grade NAT, multicast, reserved and documentation ranges, in IPv4 and IPv6, including
 * IPv4 carried inside IPv6 (mapped `::ffff:a.b.c.d`, compatible, NAT64 `64:ff9b::/96`, 6to4
 * `2002::/16`; Teredo is refused outright since its embedded address is obfuscated).
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

/** True for any address a webhook must not reach (see the module comment). */
export function isBlockedAddress(address: string): boolean {
  const family = isIP(address.split('%')[0] as string)
  if (family === 4) return V4_BLOCKED.some((r) => inRange(v4(address), 32, r))
  if (family !== 6) return true
  const n = v6(address)
  const embedded =
    n >> 32n === 0xffffn || // ::ffff:a.b.c.d (mapped)
    n >> 32n === 0n || // ::a.b.c.d (compatible; :: and ::1 are blocked below too)
    n >> 32n === 0x0064ff9b0000000000000000n // 64:ff9b::a.b.c.d (NAT64)
  if (embedded && n > 1n) return V4_BLOCKED.some((r) => inRange(n & 0xffffffffn, 32, r))
  if (n >> 112n === 0x2002n) return V4_BLOCKED.some((r) => inRange((n >> 80n) & 0xffffffffn, 32, r))
  return V6_BLOCKED.some((r) => inRange(n, 128, r))
}

/** The URL's host without IPv6 brackets. */
export const hostOf = (url: URL): string => url.hostname.replace(/^\[(.*)\]$/, '$1')

/**
 * What can be decided without DNS: the scheme, no credentials in the URL, and a host that is
 * not a blocked address literal or `localhost`. Names are checked on the address they resolve
 * to, at every delivery (`src/webhooks/http-post.ts`). Returns the reason, or undefined when fine.
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
