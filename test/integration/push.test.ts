import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/lib/ids.js'
import type { DeliveryChannel, DeliveryResult, OutboxEvent } from '../../src/services/outbox-channel.js'
import { createPushChannel, topicOf } from '../../src/services/push.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { type FakeBrowser, FakePushService } from '../helpers/push-service.js'
import {
  addMember,
  directChat,
  eventually,
  groupChat,
  removeMember,
  restDelete,
  type StoredMessage,
  TestSocket,
  userSocketUrl,
} from '../helpers/ws-client.js'

/**
 * The outbox's `push` channel against a local push service that decrypts every payload with the
 * subscription's keys and checks the VAPID signature. Events are built from real messages sent
 * through the app, as the outbox writes them (`message.created`, `data.message` = the Message view).
 */
describe.each(DRIVERS)('Web Push on %s', (driver) => {
  let t: TestApp
  let service: FakePushService
  let channel: DeliveryChannel
  let now = Date.now()
  const WINDOW_MS = 10_000

  beforeAll(async () => {
    service = await FakePushService.start()
    // The tests drive the push channel themselves; PUSH_ENABLED=false keeps the app's own outbox
    // worker from delivering the same events meanwhile.
    t = await startTestApp({
      driver,
      env: { PUSH_ALLOW_PRIVATE: 'true', PUSH_ENABLED: 'false', PUSH_COALESCE_WINDOW_MS: String(WINDOW_MS) },
    })
    await t.listen()
    channel = channelWith({})
  })
  afterAll(async () => {
    await t?.close()
    await service?.close()
  })

  function channelWith(overrides: Partial<TestApp['services']['config']['push']>) {
    return createPushChannel({
      db: t.database.db,
      presence: t.services.presence.counts,
      subscriptions: t.services.push,
      config: { ...t.services.config.push, ...overrides },
      clock: () => now,
      ca: service.ca,
    })
  }

  const users = <N extends string[]>(...names: N) =>
    Promise.all(names.map((n) => registerUser(t.app, n))) as Promise<{ [K in keyof N]: TestUser }>

  const eventOf = (message: StoredMessage): OutboxEvent => ({
    id: newId(),
    type: 'message.created',
    occurredAt: String(message.created_at),
    conversationId: String(message.conversation_id),
    data: { conversation_id: message.conversation_id, message },
  })

  /** What the outbox worker does with one event: ask for targets, deliver to each. */
  async function run(event: OutboxEvent, using = channel): Promise<Map<string, DeliveryResult>> {
    const results = new Map<string, DeliveryResult>()
    for (const target of await using.targets(event))
      results.set(target, await using.deliver(event, target, 1))
    return results
  }

  async function subscribe(user: TestUser): Promise<{ browser: FakeBrowser; id: string }> {
    const browser = service.browser()
    const res = await t.app.inject({
      method: 'POST',
      url: '/api/v1/users/me/push-subscriptions',
      headers: user.auth,
      payload: browser.subscription(),
    })
    expect(res.statusCode).toBe(201)
    return { browser, id: res.json().id }
  }

  async function send(user: TestUser, conversation: string, content: string, mentions?: string[]) {
    const res = await t.app.inject({
      method: 'POST',
      url: `/api/v1/chat/conversations/${conversation}/messages`,
      headers: user.auth,
      payload: { content, ...(mentions ? { mentions } : {}) },
    })
    expect(res.statusCode).toBe(201)
    return res.json() as StoredMessage
  }

  const mute = (user: TestUser, conversation: string) =>
    t.app.inject({
      method: 'PUT',
      url: `/api/v1/chat/conversations/${conversation}/mute`,
      headers: user.auth,
      payload: {},
    })

  it('pushes to offline members only, encrypted for their browser and signed with the VAPID key', async () => {
    const [owner, alice, bob, stranger] = await users('Owner', 'Alice', 'Bob', 'Stranger')
    const group = await groupChat(t.app, owner, [alice, bob])
    const a = await subscribe(alice)
    const b = await subscribe(bob)
    const s = await subscribe(stranger)
    const o = await subscribe(owner)
    const socket = await TestSocket.open(userSocketUrl(t.url), { token: bob.token })
    await socket.waitFor((f) => f.type === 'ready')

    const message = await send(owner, group, 'hello team')
    const results = await run(eventOf(message))
    expect([...results.keys()]).toEqual([a.id])
    expect(results.get(a.id)).toEqual({ kind: 'delivered' })
    expect(service.rejected).toEqual([])
    const [push] = service.to(a.browser)
    expect(push?.payload).toEqual({
      type: 'message.created',
      conversation_id: group,
      conversation_kind: 'group',
      conversation_title: 'Team',
      seq: message.seq,
      message_id: message.id,
      sender_id: owner.id,
      sender_name: expect.stringMatching(/^Owner /),
      preview: 'hello team',
      count: 1,
      mentioned: false,
    })
    const key = (await t.app.inject({ url: '/api/v1/push/vapid-public-key', headers: alice.auth })).json()
    expect(push?.vapid.publicKey).toBe(key.public_key)
    expect(push?.vapid.claims.sub).toBe(t.services.config.push.vapidSubject)
    expect(push?.headers.ttl).toBe('86400')
    expect(push?.headers.urgency).toBe('normal')
    expect(push?.headers.topic).toBe(topicOf(group))
    for (const nobody of [b, s, o]) expect(service.to(nobody.browser)).toEqual([])

    // Once Bob's last socket is gone, he is offline everywhere and gets the next one.
    socket.close()
    await eventually(
      'bob offline',
      async () => !(await t.services.presence.counts.onlineAmong([bob.id])).has(bob.id),
    )
    const next = await run(eventOf(await send(alice, group, 'are you there?')))
    expect([...next.keys()].sort()).toEqual([b.id, o.id].sort())
  })

  it('a direct message is urgent; PUSH_PREVIEW=none sends no text; a deleted message is not pushed', async () => {
    const [ann, ben] = await users('Ann', 'Ben')
    const direct = await directChat(t.app, ann, ben)
    const b = await subscribe(ben)
    await run(eventOf(await send(ann, direct, 'psst')))
    const [first] = service.to(b.browser)
    expect(first?.headers.urgency).toBe('high')
    expect(first?.payload).toMatchObject({ conversation_kind: 'direct', preview: 'psst', count: 1 })

    now += WINDOW_MS
    await run(eventOf(await send(ann, direct, 'secret plans')), channelWith({ preview: 'none' }))
    expect(service.to(b.browser)[1]?.payload).toMatchObject({
      preview: null,
      sender_name: expect.any(String),
    })

    now += WINDOW_MS
    const gone = await send(ann, direct, 'oops, wrong chat')
    await restDelete(t.app, ann, gone.id)
    expect(await run(eventOf(gone))).toEqual(new Map([[b.id, { kind: 'delivered' }]]))
    expect(service.to(b.browser)).toHaveLength(2)
  })

  it('a mute silences the conversation except for personal mentions (not @all)', async () => {
    const [owner, alice, bob] = await users('Owner', 'Alice', 'Bob')
    const group = await groupChat(t.app, owner, [alice, bob])
    const a = await subscribe(alice)
    const b = await subscribe(bob)
    expect((await mute(alice, group)).statusCode).toBe(200)

    expect([...(await run(eventOf(await send(owner, group, 'chatter')))).keys()]).toEqual([b.id])
    expect([...(await run(eventOf(await send(owner, group, 'everyone!', ['@all'])))).keys()]).toEqual([b.id])
    now += WINDOW_MS
    const mention = await send(bob, group, 'alice, look', [alice.id])
    expect([...(await run(eventOf(mention))).keys()]).toEqual([a.id])
    expect(service.to(a.browser).map((p) => p.payload)).toEqual([
      // The count covers the muted chatter too: what is new since Alice's last push.
      expect.objectContaining({ seq: mention.seq, mentioned: true, count: 3 }),
    ])
    expect(service.to(a.browser)[0]?.headers.urgency).toBe('high')

    await t.app.inject({
      method: 'DELETE',
      url: `/api/v1/chat/conversations/${group}/mute`,
      headers: alice.auth,
    })
    now += WINDOW_MS
    expect([...(await run(eventOf(await send(owner, group, 'back')))).keys()].sort()).toEqual(
      [a.id, b.id].sort(),
    )
  })

  it("a recipient who blocks the sender gets no push of the sender's messages, even when mentioned", async () => {
    const [owner, alice, bob] = await users('Owner', 'Alice', 'Bob')
    const group = await groupChat(t.app, owner, [alice, bob])
    const a = await subscribe(alice)
    const b = await subscribe(bob)
    const block = (method: 'PUT' | 'DELETE') =>
      t.app.inject({ method, url: `/api/v1/users/me/blocks/${owner.id}`, headers: alice.auth })
    expect((await block('PUT')).statusCode).toBe(204)

    const targetsOf = async (from: TestUser, text: string, mentions?: string[]) =>
      (await channel.targets(eventOf(await send(from, group, text, mentions)))).sort()
    expect(await targetsOf(owner, 'hello all')).toEqual([b.id])
    expect(await targetsOf(owner, 'alice?', [alice.id])).toEqual([b.id])
    // One-way, and about this sender only: Bob's messages still reach Alice.
    expect(await targetsOf(bob, 'hi')).toEqual([a.id])
    expect((await block('DELETE')).statusCode).toBe(204)
    expect(await targetsOf(owner, 'unblocked')).toEqual([a.id, b.id].sort())
  })

  it('never pushes to removed members, also when removed between commit and delivery', async () => {
    const [owner, alice] = await users('Owner', 'Alice')
    const group = await groupChat(t.app, owner, [alice])
    const a = await subscribe(alice)
    const before = eventOf(await send(owner, group, 'before'))
    const targets = await channel.targets(before)
    expect(targets).toEqual([a.id])

    await removeMember(t.app, owner, group, alice)
    expect(await channel.deliver(before, a.id, 1)).toEqual({ kind: 'delivered' })
    expect(await channel.targets(eventOf(await send(owner, group, 'after')))).toEqual([])
    // Added back: what was said while away (or before) is still not theirs to be told about.
    await addMember(t.app, owner, group, alice)
    expect(await channel.targets(before)).toEqual([])
    expect(await channel.deliver(before, a.id, 2)).toEqual({ kind: 'delivered' })
    expect(service.to(a.browser)).toEqual([])
    expect(await channel.targets(eventOf(await send(owner, group, 'welcome back')))).toEqual([a.id])
  })

  it('deletes a subscription the push service no longer knows (404/410) and retries 429/5xx', async () => {
    const [owner, alice] = await users('Owner', 'Alice')
    const group = await groupChat(t.app, owner, [alice])
    const gone = await subscribe(alice)
    const missing = await subscribe(alice)
    const busy = await subscribe(alice)
    const broken = await subscribe(alice)
    gone.browser.answer = { status: 410 }
    missing.browser.answer = { status: 404 }
    busy.browser.answer = { status: 429, headers: { 'Retry-After': '7' } }
    broken.browser.answer = { status: 503 }

    const results = await run(eventOf(await send(owner, group, 'anyone?')))
    expect(results.get(gone.id)).toMatchObject({ kind: 'gone' })
    expect(results.get(missing.id)).toMatchObject({ kind: 'gone' })
    expect(results.get(busy.id)).toMatchObject({ kind: 'retry', retryAfterMs: 7000 })
    expect(results.get(broken.id)).toMatchObject({ kind: 'retry', error: 'push service answered 503' })
    const left = await t.app.inject({ url: '/api/v1/users/me/push-subscriptions', headers: alice.auth })
    expect(
      left
        .json()
        .items.map((s: { id: string }) => s.id)
        .sort(),
    ).toEqual([busy.id, broken.id].sort())
  })

  it('coalesces a burst into one push sent at the end of the window, losing none', async () => {
    const [owner, alice] = await users('Owner', 'Alice')
    const group = await groupChat(t.app, owner, [alice])
    const a = await subscribe(alice)
    const [m1, m2, m3, m4] = [
      eventOf(await send(owner, group, 'one')),
      eventOf(await send(owner, group, 'two')),
      eventOf(await send(owner, group, 'three')),
      eventOf(await send(owner, group, 'four')),
    ]
    // The first goes at once; the next ones wait for the end of its window.
    expect(await channel.deliver(m1, a.id, 1)).toEqual({ kind: 'delivered' })
    const wait2 = await channel.deliver(m3, a.id, 1)
    expect(wait2).toMatchObject({ kind: 'retry', retryAfterMs: WINDOW_MS })
    now += 4000
    // An older message arriving after a newer one: the newer one's push will cover it.
    expect(await channel.deliver(m2, a.id, 1)).toEqual({ kind: 'delivered' })
    expect(await channel.deliver(m4, a.id, 1)).toMatchObject({
      kind: 'retry',
      retryAfterMs: WINDOW_MS - 4000,
    })
    // The outbox retries m3 (superseded by m4 since) and m4 after the window.
    now += WINDOW_MS
    expect(await channel.deliver(m3, a.id, 2)).toEqual({ kind: 'delivered' })
    expect(await channel.deliver(m4, a.id, 2)).toEqual({ kind: 'delivered' })
    expect(service.to(a.browser).map((p) => [p.payload.preview, p.payload.count])).toEqual([
      ['one', 1],
      ['four', 3],
    ])
    // A repeated delivery (a worker that died after sending) sends nothing twice.
    expect(await channel.deliver(m4, a.id, 3)).toEqual({ kind: 'delivered' })
    expect(service.to(a.browser)).toHaveLength(2)
  })

  it('keeps the newest of a burst when its push fails: the retry sends it', async () => {
    const [owner, alice] = await users('Owner', 'Alice')
    const group = await groupChat(t.app, owner, [alice])
    const a = await subscribe(alice)
    const m1 = eventOf(await send(owner, group, 'first'))
    const m2 = eventOf(await send(owner, group, 'second'))
    a.browser.answer = { status: 500 }
    expect(await channel.deliver(m1, a.id, 1)).toMatchObject({ kind: 'retry' })
    expect(await channel.deliver(m2, a.id, 1)).toMatchObject({ kind: 'retry', retryAfterMs: WINDOW_MS })
    a.browser.answer = { status: 201 }
    now += WINDOW_MS
    expect(await channel.deliver(m1, a.id, 2)).toEqual({ kind: 'delivered' })
    expect(await channel.deliver(m2, a.id, 2)).toEqual({ kind: 'delivered' })
    expect(service.to(a.browser).map((p) => [p.payload.preview, p.payload.count])).toEqual([['second', 2]])
  })
})
