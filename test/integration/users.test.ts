import { randomBytes, randomUUID } from 'node:crypto'
import { eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { users } from '../../src/store/schema.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'

const PASSWORD = 'Sup3r-secret!'
/** A word no other test's users carry, so searches see only this test's users. */
const uniqueWord = () => `Zq${randomBytes(4).toString('hex')}`
const PUBLIC_FIELDS = ['created_at', 'full_name', 'id']

describe.each(DRIVERS)('users on %s', (driver) => {
  let t: TestApp
  let viewer: TestUser
  beforeAll(async () => {
    t = await startTestApp({ driver })
    viewer = await registerUser(t.app, 'Viewer')
  })
  afterAll(async () => t?.close())

  const register = async (fullName: string, email = `${randomUUID()}@example.com`) => {
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/register',
      payload: { email, password: PASSWORD, full_name: fullName },
    })
    expect(res.statusCode, res.body).toBe(201)
    return { id: res.json().user.id as string, email }
  }
  const search = (params: Record<string, string>, who: TestUser = viewer) =>
    t.app.inject({ url: `/api/v1/users?${new URLSearchParams(params)}`, headers: who.auth })
  const call = (method: 'PATCH' | 'DELETE', url: string, who: TestUser, payload?: object) =>
    t.app.inject({ method, url: `/api/v1${url}`, headers: who.auth, ...(payload ? { payload } : {}) })
  const login = (email: string, password: string) =>
    t.app.inject({ method: 'POST', url: '/api/v1/auth/login', payload: { email, password } })
  const makeSuperuser = (id: string) =>
    t.database.db.update(users).set({ role: 'operator' }).where(eq(users.id, id))

  describe('search', () => {
    it('finds people by a prefix of any word of their name, case-insensitively', async () => {
      const word = uniqueWord()
      const first = await register(`${word} Alpha`)
      const second = await register(`Beta ${word}son`)
      await register(`Gamma ${word.slice(0, 4)}x`)
      const res = await search({ query: word.toUpperCase() })
      expect(res.statusCode).toBe(200)
      const ids = res.json().items.map((u: { id: string }) => u.id)
      expect(ids.sort()).toEqual([first.id, second.id].sort())
    })

    it('matches emails only when the query contains "@"', async () => {
      const local = `hidden-${randomBytes(4).toString('hex')}`
      const user = await register('Plain Name', `${local}@example.com`)
      expect((await search({ query: local })).json().items).toEqual([])
      const byEmail = (await search({ query: `${local}@ex` })).json().items
      expect(byEmail.map((u: { id: string }) => u.id)).toEqual([user.id])
    })

    it('pages with a cursor and returns everyone exactly once', async () => {
      const word = uniqueWord()
      const created = new Set<string>()
      for (let i = 0; i < 7; i++) created.add((await register(`${word} ${i}`)).id)
      const seen: string[] = []
      const sizes: number[] = []
      let cursor: string | null = null
      do {
        const params: Record<string, string> = { query: word, limit: '3', ...(cursor ? { cursor } : {}) }
        const page = (await search(params)).json()
        seen.push(...page.items.map((u: { id: string }) => u.id))
        sizes.push(page.items.length)
        cursor = page.next_cursor
      } while (cursor)
      expect(sizes).toEqual([3, 3, 1])
      expect(seen).toHaveLength(7)
      expect(new Set(seen)).toEqual(created)
    })

    it('shows public fields only (no email, no password hash)', async () => {
      const word = uniqueWord()
      await register(`${word} Private`)
      const [item] = (await search({ query: word })).json().items
      expect(Object.keys(item).sort()).toEqual(PUBLIC_FIELDS)
    })

    it('refuses a forged cursor and an out-of-range limit with 422', async () => {
      const forged = Buffer.from(JSON.stringify({ id: 'not-a-uuid' })).toString('base64url')
      for (const [params, path] of [
        [{ cursor: forged }, '/querystring/cursor'],
        [{ cursor: '%%%' }, '/querystring/cursor'],
        [{ limit: '0' }, '/querystring/limit'],
        [{ limit: '101' }, '/querystring/limit'],
      ] as const) {
        const res = await search(params)
        expect(res.statusCode, `${JSON.stringify(params)}: ${res.body}`).toBe(422)
        expect(res.json().errors.map((e: { path: string }) => e.path)).toContain(path)
      }
    })

    it('requires authentication', async () => {
      expect((await t.app.inject({ url: '/api/v1/users?query=a' })).statusCode).toBe(401)
    })
  })

  describe('profiles', () => {
    it('GET /users/{id} gives the public profile', async () => {
      const other = await register('Profile Person')
      const res = await t.app.inject({ url: `/api/v1/users/${other.id}`, headers: viewer.auth })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({ id: other.id, full_name: 'Profile Person' })
      expect(Object.keys(res.json()).sort()).toEqual(PUBLIC_FIELDS)
    })

    it('GET /users/{id} is 404 for an unknown id and 422 for an invalid one', async () => {
      const unknown = await t.app.inject({ url: `/api/v1/users/${randomUUID()}`, headers: viewer.auth })
      expect(unknown.statusCode).toBe(404)
      expect(unknown.headers['content-type']).toContain('application/problem+json')
      const invalid = await t.app.inject({ url: '/api/v1/users/not-a-uuid', headers: viewer.auth })
      expect(invalid.statusCode).toBe(422)
      expect(invalid.json().errors[0].path).toBe('/params/id')
    })
  })

  describe('PATCH /users/me', () => {
    it('changes the name without a password', async () => {
      const u = await registerUser(t.app, 'Renamer')
      const res = await call('PATCH', '/users/me', u, { full_name: '  New Name ' })
      expect(res.statusCode).toBe(200)
      expect(res.json()).toMatchObject({ id: u.id, full_name: 'New Name', email: u.email })
      const me = await t.app.inject({ url: '/api/v1/auth/me', headers: u.auth })
      expect(me.json().full_name).toBe('New Name')
    })

    it('changes the email only with the current password', async () => {
      const u = await registerUser(t.app, 'Mover')
      const email = `${randomUUID()}@example.com`
      for (const current of [undefined, 'Wr0ng-password!']) {
        const res = await call('PATCH', '/users/me', u, { email, current_password: current })
        expect(res.statusCode).toBe(422)
        expect(res.json().errors).toEqual([
          { path: '/body/current_password', message: 'is required and must be correct' },
        ])
      }
      const ok = await call('PATCH', '/users/me', u, {
        email: ` ${email.toUpperCase()}`,
        current_password: PASSWORD,
      })
      expect(ok.statusCode).toBe(200)
      expect(ok.json().email).toBe(email)
      expect((await login(email, PASSWORD)).statusCode).toBe(200)
      expect((await login(u.email, PASSWORD)).statusCode).toBe(401)
    })

    it('refuses an email another account uses with 409', async () => {
      const u = await registerUser(t.app, 'Taker')
      const res = await call('PATCH', '/users/me', u, { email: viewer.email, current_password: PASSWORD })
      expect(res.statusCode).toBe(409)
    })

    it('changes the password only with the current one, applies the rule, and ends other sessions', async () => {
      const u = await registerUser(t.app, 'Rekey')
      const next = 'An0ther-secret!'
      expect((await call('PATCH', '/users/me', u, { password: next })).statusCode).toBe(422)
      const weak = await call('PATCH', '/users/me', u, {
        password: 'weakpassword',
        current_password: PASSWORD,
      })
      expect(weak.statusCode).toBe(422)
      expect(weak.json().errors.map((e: { path: string }) => e.path)).toContain('/body/password')
      const ok = await call('PATCH', '/users/me', u, { password: next, current_password: PASSWORD })
      expect(ok.statusCode).toBe(200)
      expect((await login(u.email, PASSWORD)).statusCode).toBe(401)
      expect((await login(u.email, next)).statusCode).toBe(200)
      const refresh = await t.app.inject({
        method: 'POST',
        url: '/api/v1/auth/refresh',
        payload: { refresh_token: u.refresh },
      })
      expect(refresh.statusCode).toBe(401)
    })
  })

  describe('DELETE /users/me', () => {
    it('requires the correct password', async () => {
      const u = await registerUser(t.app, 'Hesitant')
      for (const payload of [{}, { password: 'Wr0ng-password!' }]) {
        const res = await call('DELETE', '/users/me', u, payload)
        expect(res.statusCode).toBe(422)
        expect(res.json().errors[0].path).toBe('/body/password')
      }
      expect((await login(u.email, PASSWORD)).statusCode).toBe(200)
    })

    it('deletes the account: no login, no profile, email free again', async () => {
      const u = await registerUser(t.app, 'Leaver')
      expect((await call('DELETE', '/users/me', u, { password: PASSWORD })).statusCode).toBe(204)
      expect((await login(u.email, PASSWORD)).statusCode).toBe(401)
      const profile = await t.app.inject({ url: `/api/v1/users/${u.id}`, headers: viewer.auth })
      expect(profile.statusCode).toBe(404)
      const again = await register('Returner', u.email)
      expect(again.id).not.toBe(u.id)
    })
  })

  describe('other users', () => {
    it('a normal user cannot change or delete another user (403)', async () => {
      const mallory = await registerUser(t.app, 'Mallory')
      const target = await registerUser(t.app, 'Target')
      const patch = await call('PATCH', `/users/${target.id}`, mallory, { full_name: 'Owned' })
      expect(patch.statusCode).toBe(403)
      expect(patch.headers['content-type']).toContain('application/problem+json')
      expect((await call('DELETE', `/users/${target.id}`, mallory)).statusCode).toBe(403)
      const me = await t.app.inject({ url: '/api/v1/auth/me', headers: target.auth })
      expect(me.statusCode).toBe(200)
      expect(me.json().full_name).toMatch(/^Target /)
    })

    it('a superuser can change and delete another user', async () => {
      const admin = await registerUser(t.app, 'Admin')
      await makeSuperuser(admin.id)
      const target = await registerUser(t.app, 'Managed')
      const patch = await call('PATCH', `/users/${target.id}`, admin, { full_name: 'Renamed By Admin' })
      expect(patch.statusCode).toBe(200)
      expect(patch.json()).toMatchObject({ id: target.id, full_name: 'Renamed By Admin' })
      expect((await call('DELETE', `/users/${target.id}`, admin)).statusCode).toBe(204)
      expect((await login(target.email, PASSWORD)).statusCode).toBe(401)
      expect((await t.app.inject({ url: '/api/v1/auth/me', headers: target.auth })).statusCode).toBe(401)
    })

    it('a superuser gets 404 for an unknown user', async () => {
      const admin = await registerUser(t.app, 'Admin')
      await makeSuperuser(admin.id)
      expect((await call('PATCH', `/users/${randomUUID()}`, admin, { full_name: 'X' })).statusCode).toBe(404)
      expect((await call('DELETE', `/users/${randomUUID()}`, admin)).statusCode).toBe(404)
    })

    // A stolen superuser access token must not be enough to take over the superuser's own account.
    it('a superuser still needs the current password for their own email and password', async () => {
      const admin = await registerUser(t.app, 'Admin')
      await makeSuperuser(admin.id)
      const res = await call('PATCH', '/users/me', admin, { password: 'An0ther-secret!' })
      expect(res.statusCode).toBe(422)
      expect((await call('DELETE', '/users/me', admin, {})).statusCode).toBe(422)
    })
  })
})
