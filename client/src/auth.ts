import { ChatError, ProblemError } from './errors.js'
import type { RestClient, TokenSource } from './rest.js'
import type { CurrentUser, RegisterInput } from './rest-types.js'
import type { SessionEvent, TokenStore, Tokens } from './types.js'

interface TokenPair {
  access_token: string
  refresh_token: string
  expires_in: number
}

/**
 * Sign-up, sign-in, refresh and sign-out. The refresh token rotates on every use and a reused one
 * revokes its whole family on the server, so exactly one refresh runs at a time: every caller that
 * got a 401 meanwhile waits for it and uses its result. A refusal (expired, revoked, or reused)
 * ends the session once (`session` event `expired`); it is never retried in a loop.
 */
export class AuthApi implements TokenSource {
  /** The signed-in user, once known. */
  user: CurrentUser | undefined
  private refreshing: Promise<string> | undefined
  private freshTimer: ReturnType<typeof setTimeout> | undefined
  private freshGeneration = 0

  constructor(
    private readonly rest: RestClient,
    private readonly store: TokenStore,
    private readonly events: { session(e: SessionEvent): void | Promise<void> },
    private readonly refreshAheadMs: number,
  ) {}

  /** Creates an account and signs in. */
  async register(input: RegisterInput): Promise<CurrentUser> {
    const res = await this.rest.post('/api/v1/auth/register', { body: input, auth: false })
    await this.keep(res)
    this.user = res.user
    await this.events.session({ status: 'signed_in' })
    return res.user
  }

  /** Signs in with email and password. */
  async login(credentials: { email: string; password: string }): Promise<CurrentUser> {
    const res = await this.rest.post('/api/v1/auth/login', { body: credentials, auth: false })
    await this.keep(res)
    const user = await this.rest.get('/api/v1/auth/me')
    this.user = user
    await this.events.session({ status: 'signed_in' })
    return user
  }

  /**
   * Picks up a session from the token store (a reload): the user, or undefined when there is
   * none or it has ended.
   */
  async restore(): Promise<CurrentUser | undefined> {
    if (!(await this.store.get())) return undefined
    try {
      const user = await this.rest.get('/api/v1/auth/me')
      this.user = user
      await this.events.session({ status: 'signed_in' })
      return user
    } catch (err) {
      if (err instanceof ChatError && err.code === 'session_expired') return undefined
      throw err
    }
  }

  /** Revokes the refresh token's family on the server (best effort) and forgets the tokens. */
  async logout(): Promise<void> {
    const tokens = await this.store.get()
    await this.store.set(undefined)
    this.user = undefined
    if (tokens) {
      try {
        await this.rest.post('/api/v1/auth/logout', {
          body: { refresh_token: tokens.refreshToken },
          auth: false,
        })
      } catch {
        // Signed out locally either way; the server's copy expires on its own.
      }
    }
    await this.events.session({ status: 'signed_out' })
  }

  async signedIn(): Promise<boolean> {
    return (await this.store.get()) !== undefined
  }

  /** When the current access token expires (ms since the epoch), if signed in. */
  async expiresAt(): Promise<number | undefined> {
    return (await this.store.get())?.accessExpiresAt
  }

  async accessToken(): Promise<string | undefined> {
    const tokens = await this.store.get()
    if (!tokens) return undefined
    if (tokens.accessExpiresAt - Date.now() > this.refreshAheadMs) return tokens.accessToken
    return this.refreshAfter(tokens.accessToken)
  }

  /** Refreshes unless someone already replaced `used`; one refresh in flight at a time. */
  async refreshAfter(used: string): Promise<string> {
    const tokens = await this.store.get()
    if (!tokens) throw new ChatError('session_expired', 'not signed in')
    const fresh = tokens.accessExpiresAt - Date.now() > this.refreshAheadMs
    if (tokens.accessToken !== used && fresh) return tokens.accessToken
    this.refreshing ??= this.refresh(tokens).finally(() => {
      this.refreshing = undefined
    })
    return this.refreshing
  }

  /** Forces a refresh now (e.g. before a socket's access token expires). */
  async refreshNow(): Promise<string> {
    const tokens = await this.store.get()
    if (!tokens) throw new ChatError('session_expired', 'not signed in')
    return this.refreshAfter(tokens.accessToken)
  }

  /**
   * Refreshes `refreshAheadMs` before the access token expires, again after every refresh, and
   * hands each new token to `use` (the open socket's `auth` frame, so it is never closed with 4401).
   */
  keepFresh(use: (token: string) => void, failed: (err: ChatError) => void, retryMs: () => number): void {
    this.stopKeepingFresh()
    const generation = this.freshGeneration
    const again = () => {
      if (generation === this.freshGeneration) this.keepFresh(use, failed, retryMs)
    }
    void this.expiresAt().then((at) => {
      if (at === undefined || generation !== this.freshGeneration) return
      const wait = Math.max(0, at - Date.now() - this.refreshAheadMs)
      this.freshTimer = setTimeout(
        () => {
          this.refreshNow().then(
            (token) => {
              if (generation !== this.freshGeneration) return
              use(token)
              again()
            },
            (err: unknown) => {
              if (err instanceof ChatError && err.code === 'session_expired') return
              failed(err instanceof ChatError ? err : new ChatError('network', String(err)))
              this.freshTimer = setTimeout(again, retryMs())
            },
          )
        },
        // setTimeout's limit (~24.8 days); access tokens live minutes.
        Math.min(wait, 2 ** 31 - 1),
      )
    })
  }

  stopKeepingFresh(): void {
    this.freshGeneration++
    clearTimeout(this.freshTimer)
  }

  private async refresh(tokens: Tokens): Promise<string> {
    let pair: TokenPair
    try {
      pair = await this.rest.post('/api/v1/auth/refresh', {
        body: { refresh_token: tokens.refreshToken },
        auth: false,
      })
    } catch (err) {
      if (!(err instanceof ProblemError) || err.status !== 401) throw err
      // Another tab sharing the store may have rotated the token meanwhile: use its result.
      const now = await this.store.get()
      if (now && now.refreshToken !== tokens.refreshToken) return now.accessToken
      await this.store.set(undefined)
      this.user = undefined
      const ended = new ChatError(
        'session_expired',
        `the session cannot be refreshed: ${err.message}`,
        401,
        err.problem,
      )
      await this.events.session({ status: 'expired', error: ended })
      throw ended
    }
    await this.keep(pair)
    await this.events.session({ status: 'refreshed' })
    return pair.access_token
  }

  private async keep(pair: TokenPair): Promise<void> {
    await this.store.set({
      accessToken: pair.access_token,
      refreshToken: pair.refresh_token,
      accessExpiresAt: Date.now() + pair.expires_in * 1000,
    })
  }
}
