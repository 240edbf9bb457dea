import { createECDH, randomBytes, randomUUID } from 'node:crypto'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConfig } from '../../src/config/config.js'
import { PushSubscriptionService } from '../../src/services/push-subscriptions.js'
import { subscriptionsOf } from '../../src/store/push-subscriptions.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'

const URL_BASE = '/api/v1/users/me/push-subscriptions'
/** A public address as an IP literal: registration checks it without DNS (nothing is sent to it). */
const PUBLIC = 'https://93.184.216.34'

function subscriptionJson(endpoint = `${PUBLIC}/push/${randomUUID()}`) {
  const ecdh = createECDH('prime256v1')
  ecdh.generateKeys()
  return {
    endpoint,
    expirationTime: null,
    keys: { p256dh: ecdh.getPublicKey().toString('base64url'), auth: randomBytes(16).toString('base64url') },
  }
}

/** The subscription routes, with endpoints held to public https addresses (PUSH_ALLOW_PRIVATE off). */
describe.each(DRIVERS)('push subscriptions on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver, env: { PUSH_MAX_SUBSCRIPTIONS_PER_USER: '3' } })
  })
  afterAll(async () => t?.close())

  const post = (user: TestUser, payload: object) =>
    t.app.inject({ method: 'POST', url: URL_BASE, headers: user.auth, payload })
  const list = async (user: TestUser) =>
    (await t.app.inject({ url: URL_BASE, headers: user.auth })).json().items as {
      id: string
      endpoint: string
    }[]

  it('registers, lists, re-registers, moves between accounts and deletes', async () => {
    const [ann, ben] = [await registerUser(t.app, 'Ann'), await registerUser(t.app, 'Ben')]
    const json = subscriptionJson()
    const created = await post(ann, json)
    expect(created.statusCode).toBe(201)
    expect(created.json()).toEqual({
      id: expect.any(String),
      endpoint: json.endpoint,
      created_at: expect.any(String),
      expires_at: null,
    })
    expect(created.body).not.toContain(json.keys.auth)
    // The same browser again (new keys): updated, not doubled.
    const again = await post(ann, {
      ...subscriptionJson(json.endpoint),
      expirationTime: Date.now() + 86_400_000,
    })
    expect(again.statusCode).toBe(200)
    expect(again.json().id).toBe(created.json().id)
    expect(again.json().expires_at).not.toBeNull()
    expect((await list(ann)).map((s) => s.endpoint)).toEqual([json.endpoint])

    // Ben signs in on the same browser: its pushes are his now.
    const moved = await post(ben, json)
    expect(moved.statusCode).toBe(201)
    expect(await list(ann)).toEqual([])
    expect((await list(ben)).map((s) => s.endpoint)).toEqual([json.endpoint])

    const other = `${URL_BASE}/${moved.json().id}`
    expect((await t.app.inject({ method: 'DELETE', url: other, headers: ann.auth })).statusCode).toBe(404)
    expect((await t.app.inject({ method: 'DELETE', url: other, headers: ben.auth })).statusCode).toBe(204)
    expect((await t.app.inject({ method: 'DELETE', url: other, headers: ben.auth })).statusCode).toBe(404)
    expect(await list(ben)).toEqual([])
  })

  it('holds each user to PUSH_MAX_SUBSCRIPTIONS_PER_USER, also under parallel registrations', async () => {
    const ann = await registerUser(t.app, 'Ann')
    const results = await Promise.all(Array.from({ length: 6 }, () => post(ann, subscriptionJson())))
    expect(results.map((r) => r.statusCode).sort()).toEqual([201, 201, 201, 409, 409, 409])
    expect(await list(ann)).toHaveLength(3)
    // Re-registering one it holds still works at the limit.
    const held = (await list(ann))[0] as { endpoint: string }
    expect((await post(ann, subscriptionJson(held.endpoint))).statusCode).toBe(200)
  })

  it("deletes the account's subscriptions with the account, and only theirs", async () => {
    const [ann, ben] = [await registerUser(t.app, 'Ann'), await registerUser(t.app, 'Ben')]
    for (const user of [ann, ann, ben]) expect((await post(user, subscriptionJson())).statusCode).toBe(201)
    const deleted = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/me',
      headers: ann.auth,
      payload: { password: ann.password },
    })
    expect(deleted.statusCode).toBe(204)
    expect(await subscriptionsOf(t.database.db, ann.id)).toEqual([])
    expect(await list(ben)).toHaveLength(1)
  })

  it('refuses endpoints that are not public https URLs, and keys that are not P-256 and 16 bytes', async () => {
    const ann = await registerUser(t.app, 'Ann')
    const refused = async (payload: object) => {
      const res = await post(ann, payload)
      expect(res.statusCode, res.body).toBe(422)
      return (res.json().errors as { path: string }[]).map((e) => e.path)
    }
    for (const endpoint of [
      'http://93.184.216.34/push/1',
      'https://127.0.0.1/push/1',
      'https://10.1.2.3/push/1',
      'https://169.254.169.254/latest/meta-data',
      'https://[::1]/push/1',
      'https://[::ffff:192.168.0.1]/push/1',
      'https://[fd00::1]/push/1',
      'https://user:pass@93.184.216.34/push/1',
      'https://localhost/push/1',
      'https://no-such-host.invalid/push/1',
      'not a url',
    ]) {
      expect(await refused(subscriptionJson(endpoint)), endpoint).toEqual(['/body/endpoint'])
    }
    const good = subscriptionJson()
    const notOnCurve = Buffer.alloc(65, 1)
    notOnCurve[0] = 4
    expect(
      await refused({ ...good, keys: { ...good.keys, p256dh: notOnCurve.toString('base64url') } }),
    ).toEqual(['/body/keys/p256dh'])
    expect(
      await refused({ ...good, keys: { ...good.keys, auth: randomBytes(8).toString('base64url') } }),
    ).toEqual(['/body/keys/auth'])
    expect(await refused({ ...good, expirationTime: Date.now() - 1000 })).toEqual(['/body/expirationTime'])
    expect((await post(ann, { ...good, endpoint: `${PUBLIC}/${'x'.repeat(1100)}` })).statusCode).toBe(422)
    expect(await list(ann)).toEqual([])
  })
})

describe('the VAPID key pair', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp()
  })
  afterAll(async () => t?.close())

  it('is generated once per database, the same for instances that start together', async () => {
    const config = t.services.config.push
    const instances = Array.from({ length: 4 }, () => new PushSubscriptionService(t.database.db, config))
    const keys = await Promise.all(instances.map((i) => i.vapidKeys()))
    expect(new Set(keys.map((k) => k.publicKey)).size).toBe(1)
    expect(Buffer.from(keys[0]?.publicKey ?? '', 'base64url')).toHaveLength(65)
    const user = await registerUser(t.app, 'Ann')
    const served = await t.app.inject({ url: '/api/v1/push/vapid-public-key', headers: user.auth })
    expect(served.json()).toEqual({ public_key: keys[0]?.publicKey })
  })

  it('comes from VAPID_PUBLIC_KEY/VAPID_PRIVATE_KEY when they are set, and refuses half a pair', async () => {
    const ecdh = createECDH('prime256v1')
    ecdh.generateKeys()
    const pair = {
      publicKey: ecdh.getPublicKey().toString('base64url'),
      privateKey: ecdh.getPrivateKey().toString('base64url'),
    }
    const config = loadConfig({ VAPID_PUBLIC_KEY: pair.publicKey, VAPID_PRIVATE_KEY: pair.privateKey })
    expect(await new PushSubscriptionService(t.database.db, config.push).vapidKeys()).toEqual(pair)
    expect(() => loadConfig({ VAPID_PUBLIC_KEY: pair.publicKey })).toThrow(/both/)
    expect(() => loadConfig({ VAPID_PUBLIC_KEY: 'short', VAPID_PRIVATE_KEY: pair.privateKey })).toThrow(
      /65 bytes/,
    )
    expect(() => loadConfig({ VAPID_SUBJECT: 'someone' })).toThrow(/mailto/)
  })
})
