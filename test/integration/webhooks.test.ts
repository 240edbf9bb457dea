import { Ajv } from 'ajv'
import addFormats from 'ajv-formats'
import { and, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { OutboxPayloads } from '../../src/protocol/outbox-events.js'
import { deliveriesOf } from '../../src/store/outbox.js'
import { outboxEvents, users } from '../../src/store/schema.js'
import { registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import {
  type Answer,
  type Received,
  type Receiver,
  startReceiver,
  TEST_WEBHOOK_SECRET,
  verify,
} from '../helpers/webhook-receiver.js'
import { addMember, groupChat, removeMember, restDelete, restEdit, restSend } from '../helpers/ws-client.js'

const ajv = new Ajv({ strict: false, allErrors: true })
addFormats.default(ajv)

/** The parsed body of a request (not verified: for routing answers only). */
const bodyOf = (r: Received) => JSON.parse(r.body) as { type: string; data: Record<string, unknown> }
const contentOf = (r: Received) =>
  ((bodyOf(r).data.message as { content?: string } | undefined)?.content ?? '') as string

/** Waits until `check` returns true, reading state the test cannot be told about (the outbox tables). */
async function until(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not met in time')
    await new Promise((r) => setTimeout(r, 25))
  }
}

async function makeOperator(t: TestApp, name = 'Operator'): Promise<TestUser> {
  const u = await registerUser(t.app, name)
  await t.database.db.update(users).set({ role: 'operator' }).where(eq(users.id, u.id))
  return u
}

const FAST = {
  WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
  WEBHOOK_ALLOW_PRIVATE: 'true',
  OUTBOX_POLL_MS: '50',
  OUTBOX_RETRY_BASE_MS: '20',
  OUTBOX_RETRY_MAX_DELAY_MS: '100',
  WEBHOOK_TIMEOUT_MS: '500',
}

describe('webhooks from the outbox (PostgreSQL)', () => {
  let t: TestApp
  let receiver: Receiver
  /** Requests per webhook-id so far, so an answer can depend on the attempt. */
  const seen = new Map<string, number>()
  const answer = (r: Received): Answer => {
    const n = (seen.get(r.id) ?? 0) + 1
    seen.set(r.id, n)
    const content = bodyOf(r).type.startsWith('message.') ? contentOf(r) : ''
    if (content.startsWith('fail-twice') && n <= 2) return { status: 500 }
    if (content.startsWith('hang-once') && n === 1) return 'hang'
    if (content.startsWith('retry-after') && n === 1) return { status: 503, headers: { 'retry-after': '1' } }
    if (content.startsWith('redirect-once') && n === 1)
      return { status: 302, headers: { location: other.url } }
    return { status: 200 }
  }
  let other: Receiver
  let owner: TestUser
  let member: TestUser

  beforeAll(async () => {
    receiver = await startReceiver(answer)
    other = await startReceiver()
    t = await startTestApp({ driver: 'postgres', env: { ...FAST, WEBHOOK_URL: receiver.url } })
    owner = await registerUser(t.app, 'Owner')
    member = await registerUser(t.app, 'Member')
  })
  afterAll(async () => {
    await t?.close()
    await receiver?.close()
    await other?.close()
  })

  const ofType = (type: string, pred: (data: Record<string, unknown>) => boolean = () => true) =>
    receiver.waitFor((all) => all.some((r) => bodyOf(r).type === type && pred(bodyOf(r).data)))

  it('sends every event type, signed the Standard Webhooks way, with the payload its schema defines', async () => {
    const late = await registerUser(t.app, 'Late')
    const group = await groupChat(t.app, owner, [member])
    await addMember(t.app, owner, group, late)
    const sent = await restSend(t.app, owner, group, 'hello hooks')
    await restEdit(t.app, owner, sent.id, 'hello hooks, edited')
    await restDelete(t.app, owner, sent.id)
    await removeMember(t.app, owner, group, late)
    const leaving = await registerUser(t.app, 'Leaving')
    const del = await t.app.inject({
      method: 'DELETE',
      url: '/api/v1/users/me',
      headers: leaving.auth,
      payload: { password: leaving.password },
    })
    expect(del.statusCode).toBe(204)

    const inGroup = (d: Record<string, unknown>) => d.conversation_id === group
    await ofType('conversation.created', inGroup)
    await ofType('member.added', (d) => inGroup(d) && d.user_id === late.id)
    await ofType('message.created', inGroup)
    await ofType('message.updated', inGroup)
    await ofType('message.deleted', inGroup)
    await ofType('member.removed', (d) => inGroup(d) && d.user_id === late.id)
    await ofType('user.deleted', (d) => d.user_id === leaving.id)

    for (const r of receiver.received) {
      const body = verify(TEST_WEBHOOK_SECRET, r)
      const schema = OutboxPayloads[body.type as keyof typeof OutboxPayloads]
      expect(schema, body.type).toBeDefined()
      const valid = ajv.validate(schema, body.data)
      expect(valid, `${body.type}: ${ajv.errorsText()}`).toBe(true)
      expect(Number.isNaN(Date.parse(body.timestamp))).toBe(false)
    }
    const created = receiver.received.map(bodyOf).find((b) => b.type === 'message.created' && inGroup(b.data))
    expect(created?.data).toEqual({ conversation_id: group, message: sent })
    // A tampered body fails verification: the check above can fail.
    const first = receiver.received[0] as Received
    expect(() => verify(TEST_WEBHOOK_SECRET, { ...first, body: first.body.replace('{', '{ ') })).toThrow()
  })

  it('retries after a 500 with the same webhook-id, and stops at the first 2xx', async () => {
    const group = await groupChat(t.app, owner, [member])
    await restSend(t.app, owner, group, 'fail-twice')
    const [r] = await receiver
      .waitFor((all) => all.filter((x) => contentOf(x) === 'fail-twice').length >= 3)
      .then((all) => all.filter((x) => contentOf(x) === 'fail-twice'))
    const tries = receiver.received.filter((x) => contentOf(x) === 'fail-twice')
    expect(new Set(tries.map((x) => x.id)).size).toBe(1)
    expect(tries.map((x) => x.answered)).toEqual([500, 500, 200])
    const eventId = (r as Received).id
    await until(async () => (await deliveriesOf(t.database.db, eventId))[0]?.status === 'delivered')
    expect(await deliveriesOf(t.database.db, eventId)).toEqual([
      { channel: 'webhook', target: 'env', status: 'delivered', attempts: 3, lastError: null },
    ])
    // Later traffic flows and the delivered event is not sent again.
    await restSend(t.app, owner, group, 'after the retries')
    await receiver.waitFor((all) => all.some((x) => contentOf(x) === 'after the retries'))
    expect(receiver.received.filter((x) => x.id === eventId)).toHaveLength(3)
  })

  it('retries an attempt that timed out', async () => {
    const group = await groupChat(t.app, owner, [member])
    await restSend(t.app, owner, group, 'hang-once')
    const all = await receiver.waitFor((rs) => rs.filter((x) => contentOf(x) === 'hang-once').length >= 2)
    const tries = all.filter((x) => contentOf(x) === 'hang-once')
    expect(tries[0]?.id).toBe(tries[1]?.id)
    expect(tries[1]?.answered).toBe(200)
    expect((tries[1]?.at ?? 0) - (tries[0]?.at ?? 0)).toBeGreaterThanOrEqual(450)
  })

  it('waits as long as Retry-After says, though its own backoff is shorter', async () => {
    const group = await groupChat(t.app, owner, [member])
    await restSend(t.app, owner, group, 'retry-after')
    const all = await receiver.waitFor((rs) => rs.filter((x) => contentOf(x) === 'retry-after').length >= 2)
    const tries = all.filter((x) => contentOf(x) === 'retry-after')
    expect((tries[1]?.at ?? 0) - (tries[0]?.at ?? 0)).toBeGreaterThanOrEqual(950)
  })

  it('does not follow redirects', async () => {
    const group = await groupChat(t.app, owner, [member])
    await restSend(t.app, owner, group, 'redirect-once')
    const all = await receiver.waitFor((rs) => rs.filter((x) => contentOf(x) === 'redirect-once').length >= 2)
    expect(all.filter((x) => contentOf(x) === 'redirect-once').map((x) => x.answered)).toEqual([302, 200])
    expect(other.received).toHaveLength(0)
  })

  it('lets operators register, list, test and delete endpoints; each gets only the events it asked for', async () => {
    const operator = await makeOperator(t)
    const hook = await startReceiver()
    try {
      const created = await t.app.inject({
        method: 'POST',
        url: '/api/v1/admin/webhooks',
        headers: operator.auth,
        payload: { url: hook.url, events: ['message.created'], description: 'bots' },
      })
      expect(created.statusCode).toBe(201)
      const endpoint = created.json() as { id: string; secret: string; events: string[] }
      expect(endpoint.secret).toMatch(/^whsec_[A-Za-z0-9+/]{32}$/)
      expect(endpoint.events).toEqual(['message.created'])

      const list = await t.app.inject({ url: '/api/v1/admin/webhooks', headers: operator.auth })
      expect(list.statusCode).toBe(200)
      expect(list.body).not.toContain(endpoint.secret)
      expect(list.json().items.map((w: { id: string }) => w.id)).toContain(endpoint.id)

      const tested = await t.app.inject({
        method: 'POST',
        url: `/api/v1/admin/webhooks/${endpoint.id}/test`,
        headers: operator.auth,
      })
      expect(tested.json()).toMatchObject({ delivered: true, status_code: 200, error: null })
      expect(verify(endpoint.secret, hook.received[0] as Received)).toMatchObject({
        type: 'webhook.test',
        data: { webhook_id: endpoint.id },
      })

      const group = await groupChat(t.app, owner, [member])
      const sent = await restSend(t.app, owner, group, 'for the bots')
      const got = await hook.waitFor((all) => all.some((r) => r.body.includes(sent.id)))
      const delivered = got.find((r) => r.body.includes(sent.id)) as Received
      expect(verify(endpoint.secret, delivered)).toMatchObject({ type: 'message.created' })
      // The group's creation went to the environment's endpoint only.
      const [creation] = await t.database.db
        .select({ id: outboxEvents.id })
        .from(outboxEvents)
        // The creation event itself: the message sent after it is about the same group.
        .where(and(eq(outboxEvents.aboutConversation, group), eq(outboxEvents.type, 'conversation.created')))
      await until(async () => (await deliveriesOf(t.database.db, creation?.id as string)).length > 0)
      expect((await deliveriesOf(t.database.db, creation?.id as string)).map((d) => d.target)).toEqual([
        'env',
      ])
      expect(hook.received.map((r) => bodyOf(r).type)).not.toContain('conversation.created')

      const removed = await t.app.inject({
        method: 'DELETE',
        url: `/api/v1/admin/webhooks/${endpoint.id}`,
        headers: operator.auth,
      })
      expect(removed.statusCode).toBe(204)
      for (const [method, url] of [
        ['DELETE', `/api/v1/admin/webhooks/${endpoint.id}`],
        ['POST', `/api/v1/admin/webhooks/${endpoint.id}/test`],
      ] as const) {
        expect((await t.app.inject({ method, url, headers: operator.auth })).statusCode).toBe(404)
      }
    } finally {
      await hook.close()
    }
  })

  it('refuses a malformed secret and accepts a given one', async () => {
    const operator = await makeOperator(t)
    const post = (payload: object) =>
      t.app.inject({ method: 'POST', url: '/api/v1/admin/webhooks', headers: operator.auth, payload })
    expect((await post({ url: other.url, secret: 'whsec_short' })).statusCode).toBe(422)
    expect((await post({ url: other.url, secret: 'not-a-secret' })).statusCode).toBe(422)
    expect((await post({ url: other.url, events: ['no.such.event'] })).statusCode).toBe(422)
    const given = await post({ url: other.url, secret: TEST_WEBHOOK_SECRET })
    expect(given.statusCode).toBe(201)
    expect(given.json().secret).toBe(TEST_WEBHOOK_SECRET)
    const id = given.json().id as string
    expect(
      (await t.app.inject({ method: 'DELETE', url: `/api/v1/admin/webhooks/${id}`, headers: operator.auth }))
        .statusCode,
    ).toBe(204)
  })
})

describe('dead letters', () => {
  it('marks a delivery dead once it has failed for OUTBOX_MAX_AGE_SEC, counts it in /metrics, and stops', async () => {
    const receiver = await startReceiver(() => ({ status: 500 }))
    const t = await startTestApp({
      driver: 'postgres',
      env: { ...FAST, WEBHOOK_URL: receiver.url, OUTBOX_MAX_AGE_SEC: '1', WEBHOOK_EVENTS: 'message.created' },
    })
    try {
      const a = await registerUser(t.app, 'A')
      const b = await registerUser(t.app, 'B')
      const group = await groupChat(t.app, a, [b])
      await restSend(t.app, a, group, 'nobody takes this')
      const [first] = await receiver.waitFor((all) => all.length > 0)
      const id = (first as Received).id
      await until(async () => (await deliveriesOf(t.database.db, id))[0]?.status === 'dead')
      const [row] = await deliveriesOf(t.database.db, id)
      expect(row?.lastError).toBe('HTTP 500')
      const count = receiver.received.length
      expect(count).toBeGreaterThan(1)
      expect(receiver.received.every((r) => r.id === id)).toBe(true)
      const metrics = (await t.app.inject('/metrics')).body
      expect(metrics).toContain('chat_outbox_deliveries_total{channel="webhook",outcome="dead"} 1')
      expect(metrics).toMatch(/chat_outbox_deliveries_total\{channel="webhook",outcome="retried"\} [1-9]/)
      expect(metrics).toContain('chat_outbox_pending 0')
      // Nothing is retried after death: a later message is attempted, the dead one is not.
      await restSend(t.app, a, group, 'a later one')
      await receiver.waitFor((all) => all.some((r) => r.id !== id))
      expect(receiver.received.filter((r) => r.id === id)).toHaveLength(count)
    } finally {
      await t.close()
      await receiver.close()
    }
  }, 120_000)
})

describe('SSRF (PGlite)', () => {
  it('refuses private targets at registration and at delivery unless WEBHOOK_ALLOW_PRIVATE=true', async () => {
    const receiver = await startReceiver()
    const t = await startTestApp({
      driver: 'pglite',
      env: {
        WEBHOOK_URL: receiver.url,
        WEBHOOK_SECRET: TEST_WEBHOOK_SECRET,
        OUTBOX_POLL_MS: '50',
        OUTBOX_RETRY_BASE_MS: '20',
        OUTBOX_MAX_AGE_SEC: '1',
      },
    })
    try {
      const operator = await makeOperator(t)
      for (const url of [
        'http://127.0.0.1:9/',
        'http://10.1.2.3/',
        'http://169.254.169.254/latest/meta-data',
        'http://[::1]/',
        'http://[::ffff:127.0.0.1]/',
        'http://[fe80::1]/',
        'http://localhost:8000/',
        'ftp://example.com/',
        'http://user:pw@example.com/',
      ]) {
        const res = await t.app.inject({
          method: 'POST',
          url: '/api/v1/admin/webhooks',
          headers: operator.auth,
          payload: { url },
        })
        expect(res.statusCode, url).toBe(422)
      }
      // The environment's endpoint is on 127.0.0.1: refused when delivering, so it ends dead, unsent.
      const a = await registerUser(t.app, 'A')
      const b = await registerUser(t.app, 'B')
      const group = await groupChat(t.app, a, [b])
      const [event] = await t.database.db
        .select({ id: outboxEvents.id })
        .from(outboxEvents)
        // The creation event itself: the message sent after it is about the same group.
        .where(and(eq(outboxEvents.aboutConversation, group), eq(outboxEvents.type, 'conversation.created')))
      await until(async () => (await deliveriesOf(t.database.db, event?.id as string))[0]?.status === 'dead')
      const [row] = await deliveriesOf(t.database.db, event?.id as string)
      expect(row?.lastError).toMatch(/^refused: /)
      expect(receiver.received).toHaveLength(0)
    } finally {
      await t.close()
      await receiver.close()
    }
  }, 120_000)
})
