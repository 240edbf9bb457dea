import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'

/**
 * Outbound requests to URLs that users hand us (Web Push endpoints) must not reach this
 * network: an endpoint naming 127.0.0.1, the cloud metadata address or a private service would
 * turn the server into a proxy (SSRF). Every address a host name resolves to is checked, and the
 * request then connects to the checked address itself, so a DNS answer that changes between the
 * check and the connection (rebinding) cannot send it elsewhere.
 */

const blocked = new BlockList()
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local (cloud metadata)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv4')
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['::1', 128], // loopback
  ['64:ff9b::', 96], // NAT64: would reach any IPv4 address, private ones included
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  blocked.addSubnet(net, prefix, 'ipv6')
}

/** True when `address` (an IP literal) is one an outbound request may reach from here. */
export function isPublicAddress(address: string): boolean {
  const family = isIP(address)
  if (family === 0) return false
  if (family === 6) {
    // IPv4-mapped (::ffff:10.0.0.1) and IPv4-compatible forms are checked as the IPv4 address.
    const mapped = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(address)
    if (mapped?.[1]) return isPublicAddress(mapped[1])
    if (/^::ffff:/i.test(address)) return false
    return !blocked.check(address, 'ipv6')
  }
  return !blocked.check(address, 'ipv4')
}

export class UnsafeAddressError extends Error {}

/**
 * The address to connect to for `hostname`: an IP literal as it is, a name resolved (every
 * address it resolves to must be public unless `allowPrivate`). Throws UnsafeAddressError when
 * one is not, and the resolver's error (code ENOTFOUND…) when the name does not resolve.
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
  if (!allowPrivate) {
    const bad = addresses.find((a) => !isPublicAddress(a.address))
    if (bad) throw new UnsafeAddressError(`${host} resolves to ${bad.address}, a non-public address`)
  }
  const first = addresses[0] as { address: string; family: number }
  return { address: first.address, family: first.family === 6 ? 6 : 4 }
}
