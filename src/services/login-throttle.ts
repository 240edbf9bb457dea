import { RateLimitedError } from '../errors.js'
import type { RateLimiter } from './ports.js'
import { consume } from './rate-limits.js'

export interface LoginLimits {
  /** Failures on one account from one address before that address waits between attempts. */
  maxFailures: number
  /** Failures from one address, whatever the account, before it is refused for the window. */
  maxFailuresPerIp: number
  /** Failures on one account from every address past which no address gets free failures on it. */
  accountSlowdownAfter: number
  /** Failures are counted in fixed windows this long; it also caps a hold. */
  windowSec: number
}

/** An admitted attempt. A failure needs nothing more: it was counted when admitted. */
export interface LoginAttempt {
  /** The password was right: this address's failures on the account are forgiven. */
  succeeded(): Promise<void>
  /** The password was not checked (a server error): the attempt is taken back. */
  notTried(): Promise<void>
}

/**
 * Password-guessing throttle that never locks an account (OWASP Authentication Cheat Sheet):
 * failures are counted per (account, address), so an attacker's failures hold only the
 * attacker's own address, and the owner can sign in from theirs whatever the attacker does.
 *
 * - Per (account, address): `maxFailures` free failures per window, then each further attempt
 *   must wait a hold that doubles with every failure (1 s, 2 s, 4 s … up to the window): 429 with
 *   the hold's Retry-After, the password not tried (so a held guess learns nothing).
 * - Per address, across accounts: `maxFailuresPerIp` per window, then 429 for the window.
 * - Per account, across addresses: past `accountSlowdownAfter` failures in the window (an attack
 *   spread over many addresses), no address has free failures on that account: each waits from
 *   its first failure. The first attempt of any address is still tried at once, so this slows the
 *   attack and never refuses the owner a try.
 *
 * Every attempt is counted as a failure before the password is tried, so parallel guesses cannot
 * all pass a check made before any was counted; one that turns out not to be a failure is taken back.
 */
export class LoginThrottle {
  constructor(
    private readonly limiter: RateLimiter,
    private readonly limits: LoginLimits,
    private readonly now: () => number = Date.now,
  ) {}

  /** Admits one attempt to sign in to `email` from `ip`, or throws RateLimitedError (429). */
  async admit(email: string, ip: string): Promise<LoginAttempt> {
    const { limiter, limits } = this
    // The address comes first: it never contains '/', so no email can make two pairs' keys meet.
    const keys = {
      ip: `login:ip:${ip}`,
      account: `login:account:${email}`,
      pair: `login:pair:${ip}/${email}`,
      hold: `login:hold:${ip}/${email}`,
    }
    const takeBack = async () => {
      await Promise.all([limiter.release(keys.ip), limiter.release(keys.account), limiter.release(keys.pair)])
    }
    await consume(limiter, keys.ip, limits.maxFailuresPerIp, limits.windowSec)
    const [account, pair] = await Promise.all([
      limiter.hit(keys.account, limits.windowSec),
      limiter.hit(keys.pair, limits.windowSec),
    ])
    const free = account.count > limits.accountSlowdownAfter ? 0 : limits.maxFailures
    if (pair.count > free) {
      const leftMs = await limiter.acquireHold(keys.hold, this.holdMs(pair.count - free), this.now())
      if (leftMs > 0) {
        await takeBack()
        throw new RateLimitedError(Math.max(1, Math.ceil(leftMs / 1000)))
      }
    }
    return {
      succeeded: async () => {
        // The account's count is only taken back, not cleared: the owner signing in must not
        // wipe the trace of an attack spread over other addresses.
        await Promise.all([
          limiter.release(keys.ip),
          limiter.release(keys.account),
          limiter.reset(keys.pair),
          limiter.reset(keys.hold),
        ])
      },
      notTried: takeBack,
    }
  }

  /** The hold the `n`-th attempt past the free failures takes: 1 s, doubling, capped at the window. */
  private holdMs(n: number): number {
    return Math.min(this.limits.windowSec, 2 ** (n - 1)) * 1000
  }
}
