import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { decodeProtectedHeader } from 'jose'
import { afterAll, describe, expect, it } from 'vitest'
import { keyId } from '../../src/auth/jwt.js'
import type { Database } from '../../src/store/db.js'
import { openDatabase } from '../../src/store/db.js'
import { signingKeys } from '../../src/store/schema.js'
import { createServices, memoryInfrastructure } from '../../src/wiring.js'
import {
  openTestDatabase,
  registerUser,
  startTestApp,
  type TestApp,
  type TestUser,
  testConfig,
} from '../helpers/app.js'
import { TestSocket, userSocketUrl } from '../helpers/ws-client.js'

/** Each instance its own DATA_DIR, as on separate machines: nothing shared but the database. */
const dirs: string[] = []
const dataDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'chat-keys-'))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

const OLD = 'old-signing-secret-that-is-long-enough-0123456789'
const NEW = 'new-signing-secret-that-is-long-enough-9876543210'

/** An instance on `database` with JWT_SECRET as given ('' = unset: the development key). */
const instance = (database: Database, jwtSecret: string) =>
  startTestApp({
    database,
    env: { NODE_ENV: 'development', JWT_SECRET: jwtSecret, DATA_DIR: dataDir() },
  }).then(async (t) => {
    await t.listen()
    return t
  })

/** The status `node` answers `user`'s token with, over HTTP and at the socket upgrade. */
async function answers(node: TestApp, token: string): Promise<{ http: number; socket: number }> {
  const res = await node.app.inject({
    method: 'GET',
    url: '/api/v1/auth/me',
    headers: { authorization: `Bearer ${token}` },
  })
  let socket = 101
  try {
    const s = await TestSocket.open(userSocketUrl(node.url), { token })
    await s.waitFor((f) => f.type === 'ready')
    s.close()
  } catch (err) {
    const status = (err as { status?: number }).status
    if (status === undefined) throw err
    socket = status
  }
  return { http: res.statusCode, socket }
}

const ACCEPTED = { http: 200, socket: 101 }
const REFUSED = { http: 401, socket: 401 }

describe('signing keys without JWT_SECRET', () => {
  it("two instances on one database accept each other's tokens, over HTTP and at the socket upgrade", async () => {
    const database = await openTestDatabase('postgres')
    const a = await instance(database, '')
    const b = await instance(database, '')
    try {
      const ann: TestUser = await registerUser(a.app, 'Ann')
      const bob: TestUser = await registerUser(b.app, 'Bob')
      expect(await answers(b, ann.token)).toEqual(ACCEPTED)
      expect(await answers(a, bob.token)).toEqual(ACCEPTED)
      // One development key, in the database; the tokens name it.
      const rows = await database.db.select().from(signingKeys)
      expect(rows).toHaveLength(1)
      expect(decodeProtectedHeader(ann.token).kid).toBe(keyId(rows[0]?.secret ?? ''))
      // A restarted instance keeps the key: its earlier tokens still work.
      await a.close()
      const again = await instance(database, '')
      try {
        expect(await answers(again, ann.token)).toEqual(ACCEPTED)
      } finally {
        await again.close()
      }
    } finally {
      await b.close()
      await database.close()
    }
  })

  it.each(['postgres', 'pglite'] as const)(
    'instances starting at the same instant create one key (%s)',
    async (driver) => {
      const database = await openTestDatabase(driver)
      // On PostgreSQL each instance has its own connection pool, as separate processes would;
      // PGlite has one connection, shared by instances in one process.
      const handles =
        driver === 'postgres'
          ? await Promise.all(
              Array.from({ length: 4 }, () => openDatabase({ databaseUrl: database.url, poolSize: 2 })),
            )
          : Array.from({ length: 4 }, () => database)
      try {
        const config = testConfig({ JWT_SECRET: '' })
        const tokens = handles.map((h) => createServices(config, h, memoryInfrastructure(config)).tokens)
        const user = '0190a8c4-0000-7000-8000-000000000001'
        const signed = await Promise.all(tokens.map((t) => t.sign(user)))
        for (const verifier of tokens)
          for (const token of signed) expect(await verifier.verify(token)).toMatchObject({ sub: user })
        expect(await database.db.select().from(signingKeys)).toHaveLength(1)
      } finally {
        if (driver === 'postgres') for (const h of handles) await h.close()
        await database.close()
      }
    },
  )
})

describe('signing key rotation across two instances', () => {
  it('keeps old tokens working while their key is listed, and refuses them once it is removed', async () => {
    const database = await openTestDatabase('postgres')
    const running: TestApp[] = []
    /** Restarts both instances with a new JWT_SECRET, as a rolling deploy does one at a time. */
    const deploy = async (first: string, second: string) => {
      for (const t of running.splice(0)) await t.close()
      running.push(await instance(database, first), await instance(database, second))
      return running as [TestApp, TestApp]
    }
    try {
      let [a, b] = await deploy(OLD, OLD)
      const old = await registerUser(a.app, 'Old')

      // Step 1: the new key is accepted everywhere before anything signs with it. Midway (one
      // instance still on OLD alone) tokens of both instances work on both.
      ;[a, b] = await deploy(`${OLD},${NEW}`, OLD)
      const midway = await registerUser(a.app, 'Midway')
      expect(await answers(b, midway.token)).toEqual(ACCEPTED)
      ;[a, b] = await deploy(`${OLD},${NEW}`, `${OLD},${NEW}`)

      // Step 2: the new key signs, the old one is still accepted.
      ;[a, b] = await deploy(`${NEW},${OLD}`, `${OLD},${NEW}`)
      const fresh = await registerUser(a.app, 'Fresh')
      expect(decodeProtectedHeader(fresh.token).kid).toBe(keyId(NEW))
      expect(await answers(b, fresh.token)).toEqual(ACCEPTED)
      ;[a, b] = await deploy(`${NEW},${OLD}`, `${NEW},${OLD}`)
      for (const node of [a, b]) {
        expect(await answers(node, old.token)).toEqual(ACCEPTED)
        expect(await answers(node, fresh.token)).toEqual(ACCEPTED)
      }
      // Step 3, once ACCESS_TOKEN_TTL has passed: the old key goes, and so do its tokens.
      ;[a, b] = await deploy(NEW, NEW)
      for (const node of [a, b]) {
        expect(await answers(node, old.token)).toEqual(REFUSED)
        expect(await answers(node, fresh.token)).toEqual(ACCEPTED)
      }
      // A refresh token is not tied to a signing key: the old session gets a token of the new key.
      const res = await a.app.inject({
        method: 'POST',
        url: '/api/v1/auth/refresh',
        payload: { refresh_token: old.refresh },
      })
      expect(res.statusCode).toBe(200)
      expect(await answers(b, res.json().access_token)).toEqual(ACCEPTED)
    } finally {
      for (const t of running) await t.close()
      await database.close()
    }
  })
})
