import {
  type ChatClient,
  ChatError,
  type FetchLike,
  MemoryTokenStore,
  type StateChange,
  type Tokens,
} from '@chat-api/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { FaultProxy } from '../helpers/fault-proxy.js'
import { nextEvent, signUp } from '../helpers/sdk.js'
import { signAccessToken } from '../helpers/ws-client.js'

/** A fetch that counts refresh calls. */
function countingFetch(): { fetch: FetchLike; refreshes: () => number } {
  let refreshes = 0
  const fetch: FetchLike = (url, init) => {
    if (url.endsWith('/api/v1/auth/refresh')) refreshes++
    return globalThis.fetch(url, init)
  }
  return { fetch, refreshes: () => refreshes }
}

describe('SDK sessions and the socket lifecycle (postgres)', () => {
  let t: TestApp
  const clients: ChatClient[] = []
  beforeAll(async () => {
    t = await startTestApp({ env: { WS_MAX_VIOLATIONS: '1', WS_MAX_FRAME_BYTES: '1024' } })
    await t.listen()
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await t.close()
  })
  const user = async (name: string, options: Parameters<typeof signUp>[2] = {}) => {
    const c = await signUp(t.url, name, options)
    clients.push(c)
    return c
  }

  it('concurrent 401s wait for one refresh, and all succeed with its token', async () => {
    const tokens = new MemoryTokenStore()
    const counter = countingFetch()
    const ann = await user('Ann', { tokenStore: tokens, fetch: counter.fetch })
    const stored = tokens.get() as Tokens
    // The server refuses this token; the client still believes it fresh, so only 401s reveal it.
    tokens.set({ ...stored, accessToken: 'expired-or-revoked' })
    const calls = Array.from({ length: 8 }, () => ann.rest.get('/api/v1/auth/me'))
    const answers = await Promise.all(calls)
    expect(answers.every((me) => me.id === ann.user?.id)).toBe(true)
    expect(counter.refreshes()).toBe(1)
    expect(tokens.get()?.refreshToken).not.toBe(stored.refreshToken)
  })

  it('an access token past its expiry: concurrent requests share one refresh before they go', async () => {
    const tokens = new MemoryTokenStore()
    const counter = countingFetch()
    const ann = await user('Ann', { tokenStore: tokens, fetch: counter.fetch })
    const stored = tokens.get() as Tokens
    tokens.set({ ...stored, accessExpiresAt: Date.now() - 1_000 })
    const answers = await Promise.all(Array.from({ length: 8 }, () => ann.rest.get('/api/v1/auth/me')))
    expect(answers.every((me) => me.id === ann.user?.id)).toBe(true)
    expect(counter.refreshes()).toBe(1)
    expect(tokens.get()?.accessExpiresAt).toBeGreaterThan(Date.now())
  })

  it('a reused refresh token ends the session once: reported, never retried in a loop', async () => {
    const tokens = new MemoryTokenStore()
    const counter = countingFetch()
    const ann = await user('Ann', { tokenStore: tokens, fetch: counter.fetch })
    await ann.connect()
    const stolen = (tokens.get() as Tokens).refreshToken
    // Someone else spends the refresh token first (a copied token, a second device).
    const thief = await globalThis.fetch(`${t.url}/api/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: stolen }),
    })
    expect(thief.status).toBe(200)
    const ended = nextEvent(ann, 'session', (s) => s.status === 'expired')
    const closed = nextEvent(ann, 'state', (s) => s.state === 'closed')
    tokens.set({ ...(tokens.get() as Tokens), accessToken: 'refused' })
    const failed = await Promise.allSettled([
      ann.rest.get('/api/v1/auth/me'),
      ann.rest.get('/api/v1/auth/me'),
    ])
    expect(failed.map((r) => r.status)).toEqual(['rejected', 'rejected'])
    const reason = (failed[0] as PromiseRejectedResult).reason as ChatError
    expect(reason).toBeInstanceOf(ChatError)
    expect(reason.code).toBe('session_expired')
    expect((await ended).error?.status).toBe(401)
    expect((await closed).reason).toBe('session_expired')
    // Later calls fail at once without asking the server again.
    await expect(ann.rest.get('/api/v1/auth/me')).rejects.toMatchObject({ code: 'session_expired' })
    expect(counter.refreshes()).toBe(1)
    expect(tokens.get()).toBeUndefined()
  })

  it('logout closes the socket, revokes the refresh token and forgets the tokens', async () => {
    const tokens = new MemoryTokenStore()
    const ann = await user('Ann', { tokenStore: tokens })
    await ann.connect()
    const refreshToken = (tokens.get() as Tokens).refreshToken
    const closed = nextEvent(ann, 'state', (s) => s.state === 'closed')
    await ann.auth.logout()
    expect((await closed).reason).toBe('signed_out')
    expect(tokens.get()).toBeUndefined()
    const reuse = await globalThis.fetch(`${t.url}/api/v1/auth/refresh`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ refresh_token: refreshToken }),
    })
    expect(reuse.status).toBe(401)
    await expect(ann.connect()).rejects.toMatchObject({ code: 'session_expired' })
  })

  it('close code 4401 (token expired on the socket): refreshes, then reconnects and resumes', async () => {
    const tokens = new MemoryTokenStore()
    const ann = await user('Ann', { tokenStore: tokens, socketAuth: 'protocol' })
    const bob = await user('Bob')
    const dm = await ann.conversations.openDirect(bob.user?.id ?? '')
    // An access token the server lets expire in a second, which the client believes good for an hour.
    const short = await signAccessToken(ann.user?.id ?? '', 1)
    tokens.set({ ...(tokens.get() as Tokens), accessToken: short, accessExpiresAt: Date.now() + 3_600_000 })
    await ann.connect()
    const refreshed = nextEvent(ann, 'session', (s) => s.status === 'refreshed')
    const kicked = nextEvent(ann, 'state', (s) => s.closeCode === 4401)
    const reopened = kicked.then(() => nextEvent(ann, 'state', (s) => s.state === 'open'))
    await Promise.all([refreshed, reopened])
    await bob.connect()
    const got = nextEvent(ann, 'message', (m) => m.conversationId === dm.id)
    await bob.settled(bob.send(dm.id, 'after the refresh').id)
    expect((await got).message.content).toBe('after the refresh')
  })

  it('close code 4403 (account closed): stops and reports, no reconnect', async () => {
    const ann = await user('Ann')
    await ann.connect()
    const states: StateChange[] = []
    ann.on('state', (s) => states.push(s))
    const closed = nextEvent(ann, 'state', (s) => s.state === 'closed')
    await ann.rest.delete('/api/v1/users/me', { body: { password: 'Sup3r-secret!' } })
    expect((await closed).reason).toBe('forbidden')
    expect(states.map((s) => s.state)).toEqual(['closed'])
    expect(ann.state).toBe('closed')
  })

  it('close code 1008 (policy violation): stops and reports', async () => {
    const ann = await user('Ann')
    await ann.connect()
    const closed = nextEvent(ann, 'state', (s) => s.state === 'closed')
    // The SDK never sends a bad frame; reach in and send one (WS_MAX_VIOLATIONS=1 here).
    const internals = ann as unknown as { connection: { socket: { send(s: string): void } } }
    internals.connection.socket.send('not json')
    expect((await closed).reason).toBe('policy_violation')
  })

  it('close code 1009 (our frame over the limit): that send fails, the socket comes back, the next goes', async () => {
    const ann = await user('Ann')
    const bob = await user('Bob')
    const dm = await ann.conversations.openDirect(bob.user?.id ?? '')
    await ann.connect()
    const big = ann.send(dm.id, 'z'.repeat(2_000))
    const next = ann.send(dm.id, 'small')
    const [failed, sent] = await Promise.all([ann.settled(big.id), ann.settled(next.id)])
    expect(failed).toMatchObject({ status: 'failed', error: { code: 'too_large' } })
    expect(sent).toMatchObject({ status: 'sent', message: { seq: 1 } })
  })

  it('close code 1001 (server going away): reconnects to another instance and resumes', async () => {
    const first = await startTestApp({ database: t.database })
    const proxy = await FaultProxy.start(await first.listen(), { seed: 2 })
    const ann = await signUp(proxy.url, 'Ann', { backoff: { baseMs: 10, capMs: 50 } })
    const bob = await user('Bob')
    clients.push(ann)
    const dm = await ann.conversations.openDirect(bob.user?.id ?? '')
    await Promise.all([ann.connect(), bob.connect()])
    // Behind the "load balancer", the next connection reaches the test's main instance.
    proxy.retarget(t.url)
    const away = nextEvent(ann, 'state', (s) => s.state === 'reconnecting' && s.closeCode === 1001)
    const back = away.then(() => nextEvent(ann, 'state', (s) => s.state === 'open'))
    const got = nextEvent(ann, 'message', (m) => m.conversationId === dm.id)
    await first.close()
    await bob.settled(bob.send(dm.id, 'while Ann moved').id)
    expect((await away).previous).toBe('open')
    await back
    expect((await got).message.content).toBe('while Ann moved')
    ann.disconnect()
    await proxy.close()
  })

  it('backs off with full jitter under a cap while the server is unreachable', async () => {
    const proxy = await FaultProxy.start(t.url, { seed: 1 })
    const ann = await signUp(proxy.url, 'Ann', {
      backoff: { baseMs: 20, capMs: 160 },
      random: () => 0.999,
    })
    clients.push(ann)
    await ann.connect()
    const delays: number[] = []
    const enough = new Promise<void>((resolve) =>
      ann.on('state', (s) => {
        if (s.state === 'reconnecting' && s.retryInMs !== undefined) delays.push(s.retryInMs)
        if (delays.length >= 6) resolve()
      }),
    )
    await proxy.close()
    await enough
    ann.disconnect()
    // random() ≈ 1 shows the ceiling of each draw: 20·2^n, capped at 160.
    expect(delays.slice(0, 6)).toEqual([19, 39, 79, 159, 159, 159])
  })
})
