import { once } from 'node:events'
import { afterAll, describe, expect, it } from 'vitest'
import {
  openTestDatabase,
  redisEnv,
  redisUrl,
  registerUser,
  startInstances,
  startTestApp,
  type TestApp,
  uniquePrefix,
} from '../helpers/app.js'
import { startServer } from '../helpers/server-process.js'
import { eventually, TestSocket, userSocketUrl } from '../helpers/ws-client.js'

const sockets: TestSocket[] = []
afterAll(() => {
  for (const s of sockets) s.close()
})

/** Opens a user socket on `node`: the socket, or the status the upgrade was refused with. */
async function tryOpen(url: string, token: string): Promise<TestSocket | number> {
  try {
    const s = await TestSocket.open(userSocketUrl(url), { token })
    sockets.push(s)
    await s.waitFor((f) => f.type === 'ready')
    return s
  } catch (err) {
    const status = (err as { status?: number }).status
    if (status === undefined) throw err
    return status
  }
}

describe('the per-user connection limit across instances', () => {
  it('admits exactly the limit when opens arrive at once, spread over two instances', async () => {
    const redis = { url: redisUrl(), prefix: uniquePrefix('leases') }
    const instances = await startInstances(2, redis, { WS_MAX_CONNECTIONS_PER_USER: '3' })
    try {
      const u = await registerUser(instances.node(0).app, 'Burst')
      const results = await Promise.all(
        Array.from({ length: 12 }, (_, i) => tryOpen(instances.node(i % 2).url, u.token)),
      )
      const opened = results.filter((r): r is TestSocket => r instanceof TestSocket)
      expect(opened).toHaveLength(3)
      expect(results.filter((r) => r === 429)).toHaveLength(9)
      // A closed socket gives its slot back, on whichever instance it was.
      for (const s of opened) s.close()
      await eventually(
        'the slots to come back',
        async () => {
          const again = await tryOpen(instances.node(1).url, u.token)
          if (again instanceof TestSocket) again.close()
          return again instanceof TestSocket
        },
        10_000,
      )
    } finally {
      await instances.close()
    }
  })

  it('frees the slots of a killed instance once their leases expire, and only then', async () => {
    const database = await openTestDatabase('postgres')
    const redis = redisEnv({ url: redisUrl(), prefix: uniquePrefix('leases') })
    // Renewed every 4 s: a killed instance's sockets count for 8 to 12 s more. Long enough that
    // the check right after the kill sees them on a loaded machine, short enough to wait out.
    const LEASE_MS = 12_000
    const limits = { WS_MAX_CONNECTIONS_PER_USER: '2', WS_CONNECTION_LEASE_MS: String(LEASE_MS) }
    let survivor: TestApp | undefined
    const doomed = await startServer({ DATABASE_URL: database.url ?? '', ...redis, ...limits })
    try {
      survivor = await startTestApp({ database, env: { ...redis, ...limits } })
      await survivor.listen()
      const u = await registerUser(survivor.app, 'Lease')
      for (let i = 0; i < 2; i++) expect(await tryOpen(doomed.url, u.token)).toBeInstanceOf(TestSocket)
      expect(await tryOpen(survivor.url, u.token)).toBe(429)

      doomed.child.kill('SIGKILL')
      await once(doomed.child, 'exit')
      const killedAt = Date.now()
      // Its sockets are gone, but nobody told Redis: their leases still count.
      expect(await tryOpen(survivor.url, u.token)).toBe(429)
      let back: TestSocket | number = 429
      await eventually(
        'a socket to be admitted once the dead instance’s leases expired',
        async () => {
          back = await tryOpen(survivor?.url ?? '', u.token)
          return back instanceof TestSocket
        },
        LEASE_MS + 20_000,
      )
      const freedAfterMs = Date.now() - killedAt
      // At most one lease after the kill, plus the polling (slow on a loaded machine).
      expect(freedAfterMs).toBeLessThanOrEqual(LEASE_MS + 10_000)
      // The dead instance's two leases end apart (each was renewed on its own schedule), so the
      // second slot may free a little later than the first: wait for it too.
      await eventually(
        'a second socket to be admitted once the other lease expired',
        async () => (await tryOpen(survivor?.url ?? '', u.token)) instanceof TestSocket,
        LEASE_MS + 20_000,
      )
      // The limit holds again with the survivor's own sockets.
      expect(await tryOpen(survivor.url, u.token)).toBe(429)
      console.log(`connection leases: a killed instance's slots were free ${freedAfterMs} ms after the kill`)
    } finally {
      doomed.child.kill('SIGKILL')
      for (const s of sockets.splice(0)) s.close()
      await survivor?.close()
      await database.close()
    }
  }, 120_000)
})
