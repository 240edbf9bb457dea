import { and, eq, isNull } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { UnauthorizedError } from '../../src/errors.js'
import type { AuthService } from '../../src/services/auth.js'
import { type Database, openDatabase } from '../../src/store/db.js'
import { refreshTokens } from '../../src/store/schema.js'
import { openTestDatabase, registerUser, startTestApp, type TestApp } from '../helpers/app.js'

/**
 * Ending a refresh-token family (reuse detection, RFC 9700 §4.14.2, or logout) must end it
 * whatever the interleaving with a rotation of the same family: the token that rotation hands out
 * must be dead afterwards too. Sequential reuse is covered by auth.test.ts; these rounds race the
 * requests, on two instances with their own connection pools (as two processes behind a load
 * balancer) and on PGlite.
 */
const ROUNDS = 20

/** A way of calling the service: `refresh` gives the new refresh token, or undefined on a 401. */
interface Client {
  refresh(token: string): Promise<string | undefined>
  logout(token: string): Promise<void>
}

/** Over HTTP, as a client does. */
const overHttp = (app: FastifyInstance): Client => ({
  async refresh(token) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/auth/refresh',
      payload: { refresh_token: token },
    })
    if (res.statusCode === 401) return undefined
    expect(res.statusCode, res.body).toBe(200)
    return res.json().refresh_token as string
  },
  async logout(token) {
    const res = await app.inject({
      method: 'POST',
      url: '/api/v1/auth/logout',
      payload: { refresh_token: token },
    })
    expect(res.statusCode, res.body).toBe(204)
  },
})

/**
 * Straight into the service. On PGlite the HTTP layer staggers concurrent requests enough that
 * each transaction has finished before the next request reaches the database; calling the
 * service puts the transactions in PGlite's queue back to back, the interleaving a busy server sees.
 */
const direct = (auth: AuthService): Client => ({
  async refresh(token) {
    try {
      return (await auth.refresh(token)).refresh_token
    } catch (err) {
      if (err instanceof UnauthorizedError) return undefined
      throw err
    }
  },
  logout: (token) => auth.logout(token),
})

interface Setup {
  app: FastifyInstance
  database: Database
}

/**
 * What is wrong with the family after the race, or undefined when it has ended: the successor
 * the race handed out (if any) is refused, and then no token of the family is left unrevoked.
 */
async function familyLeftAlive({ app, database }: Setup, userId: string, successor: string | undefined) {
  const again = successor === undefined ? undefined : await overHttp(app).refresh(successor)
  const live = await database.db
    .select({ id: refreshTokens.id })
    .from(refreshTokens)
    .where(and(eq(refreshTokens.userId, userId), isNull(refreshTokens.revokedAt)))
  if (again === undefined && live.length === 0) return undefined
  return `${again ? 'successor rotated again' : 'successor refused'}, ${live.length} token(s) unrevoked`
}

/** Runs `a` and `b` at once; which one starts first alternates with the round (on PGlite, the order they run in). */
async function together<A, B>(round: number, a: () => Promise<A>, b: () => Promise<B>): Promise<[A, B]> {
  if (round % 2 === 0) return Promise.all([a(), b()])
  const [rb, ra] = await Promise.all([b(), a()])
  return [ra, rb]
}

/** `ROUNDS` times: a fresh login's token presented by every caller at once. */
async function raceSameToken(setup: Setup, callers: Client[]) {
  const failures: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const u = await registerUser(setup.app, 'Racer')
    const results = await Promise.all(callers.map((c) => c.refresh(u.refresh)))
    const winners = results.filter((r) => r !== undefined)
    expect(winners).toHaveLength(1)
    const wrong = await familyLeftAlive(setup, u.id, winners[0])
    if (wrong) failures.push(`round ${round}: ${wrong}`)
  }
  return failures
}

/** The thief replays a spent token while the owner rotates its successor. */
async function raceReplayAgainstRotation(setup: Setup, thief: Client, owner: Client) {
  const failures: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const u = await registerUser(setup.app, 'Rotator')
    const second = (await owner.refresh(u.refresh)) as string
    expect(second).toBeDefined()
    const [replay, rotated] = await together(
      round,
      () => thief.refresh(u.refresh),
      () => owner.refresh(second),
    )
    expect(replay).toBeUndefined()
    const wrong = await familyLeftAlive(setup, u.id, rotated)
    if (wrong) failures.push(`round ${round}: ${wrong}`)
  }
  return failures
}

/** One device logs out while another rotates a token of the same login. */
async function raceLogoutAgainstRotation(setup: Setup, leaving: Client, rotating: Client) {
  const failures: string[] = []
  for (let round = 0; round < ROUNDS; round++) {
    const u = await registerUser(setup.app, 'Leaver')
    const [, rotated] = await together(
      round,
      () => leaving.logout(u.refresh),
      () => rotating.refresh(u.refresh),
    )
    const wrong = await familyLeftAlive(setup, u.id, rotated)
    if (wrong) failures.push(`round ${round}: ${wrong}`)
  }
  return failures
}

describe('refresh-token families racing on two instances sharing one PostgreSQL database', () => {
  let a: TestApp
  let b: TestApp
  let second: Database
  beforeAll(async () => {
    const database = await openTestDatabase('postgres')
    // A pool of its own, as a second process would have: the race is between connections.
    second = await openDatabase({ databaseUrl: database.url, poolSize: 10 })
    a = await startTestApp({ database })
    b = await startTestApp({ database: second })
  })
  afterAll(async () => {
    await b?.close()
    await second?.close()
    await a?.close()
    await a?.database.close()
  })

  it(`one token presented on both instances at once, ${ROUNDS} rounds: the family always ends`, async () => {
    expect(await raceSameToken(a, [overHttp(a.app), overHttp(b.app)])).toEqual([])
  })

  it(`the same with three copies per instance, ${ROUNDS} rounds`, async () => {
    expect(
      await raceSameToken(
        a,
        [a, b, a, b, a, b].map((t) => overHttp(t.app)),
      ),
    ).toEqual([])
  })

  it(`a replay on one instance racing the owner's rotation on the other, ${ROUNDS} rounds`, async () => {
    expect(await raceReplayAgainstRotation(a, overHttp(b.app), overHttp(a.app))).toEqual([])
  })

  it(`a logout on one instance racing a rotation on the other, ${ROUNDS} rounds`, async () => {
    expect(await raceLogoutAgainstRotation(a, overHttp(b.app), overHttp(a.app))).toEqual([])
  })
})

describe('refresh-token families racing on PGlite', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver: 'pglite' })
  })
  afterAll(async () => t?.close())

  it(`one token presented three times at once, ${ROUNDS} rounds: the family always ends`, async () => {
    const c = direct(t.services.auth)
    expect(await raceSameToken(t, [c, c, c])).toEqual([])
  })

  it(`a replay racing the owner's rotation, ${ROUNDS} rounds`, async () => {
    const c = direct(t.services.auth)
    expect(await raceReplayAgainstRotation(t, c, c)).toEqual([])
  })

  it(`a logout racing a rotation, ${ROUNDS} rounds`, async () => {
    const c = direct(t.services.auth)
    expect(await raceLogoutAgainstRotation(t, c, c)).toEqual([])
  })
})
