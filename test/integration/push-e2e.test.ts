import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DRIVERS, registerUser, startTestApp, type TestApp } from '../helpers/app.js'
import { FakePushService } from '../helpers/push-service.js'
import { directChat, eventually, restSend, TestSocket, userSocketUrl } from '../helpers/ws-client.js'

/**
 * Web Push as production runs it: PUSH_ENABLED=true, the app's own outbox worker choosing targets
 * and sending, and the push service trusted through PUSH_CA_FILE (its self-signed certificate on
 * disk), not through a channel the test builds. push.test.ts covers the channel's rules one by one.
 */
describe.each(DRIVERS)('Web Push end to end on %s', (driver) => {
  let t: TestApp
  let service: FakePushService
  let caDir: string

  beforeAll(async () => {
    service = await FakePushService.start()
    caDir = mkdtempSync(join(tmpdir(), 'push-ca-'))
    const caFile = join(caDir, 'push-service.pem')
    writeFileSync(caFile, service.ca)
    t = await startTestApp({
      driver,
      env: {
        PUSH_ENABLED: 'true',
        PUSH_CA_FILE: caFile,
        PUSH_ALLOW_PRIVATE: 'true',
        // One push per message: the test follows each message, not a burst.
        PUSH_COALESCE_WINDOW_MS: '0',
      },
    })
    await t.listen()
  })
  afterAll(async () => {
    await t?.close()
    await service?.close()
    if (caDir) rmSync(caDir, { recursive: true, force: true })
  })

  const pending = async () => (await t.services.outboxWorker.backlog()).pending

  it('pushes a direct message to a recipient with no socket, and none while they are connected', async () => {
    const alice = await registerUser(t.app, 'Alice')
    const bob = await registerUser(t.app, 'Bob')
    const dm = await directChat(t.app, alice, bob)
    const browser = service.browser()
    const sub = await t.app.inject({
      method: 'POST',
      url: '/api/v1/users/me/push-subscriptions',
      headers: bob.auth,
      payload: browser.subscription(),
    })
    expect(sub.statusCode).toBe(201)

    const first = await restSend(t.app, alice, dm, 'are you there?')
    await expect.poll(() => service.to(browser).length, { timeout: 10_000 }).toBe(1)
    expect(service.to(browser)[0]?.payload).toEqual({
      type: 'message.created',
      conversation_id: dm,
      conversation_kind: 'direct',
      conversation_title: null,
      seq: first.seq,
      message_id: first.id,
      sender_id: alice.id,
      sender_name: expect.stringMatching(/^Alice /),
      preview: 'are you there?',
      count: 1,
      mentioned: false,
    })

    // Connected: the socket delivers the message, and the outbox finishes it without a push.
    const socket = await TestSocket.open(userSocketUrl(t.url), { token: bob.token })
    await socket.waitFor((f) => f.type === 'ready')
    const second = await restSend(t.app, alice, dm, 'seen live')
    await socket.waitFor(
      (f) => f.type === 'message.new' && (f.message as { id?: string } | undefined)?.id === second.id,
    )
    await expect.poll(pending, { timeout: 10_000 }).toBe(0)
    socket.close()
    await eventually(
      'Bob offline',
      async () => !(await t.services.presence.counts.onlineAmong([bob.id])).has(bob.id),
    )

    const third = await restSend(t.app, alice, dm, 'call me back')
    await expect.poll(() => service.to(browser).length, { timeout: 10_000 }).toBe(2)
    await expect.poll(pending, { timeout: 10_000 }).toBe(0)
    expect(service.to(browser).map((p) => p.payload.seq)).toEqual([first.seq, third.seq])
    expect(service.to(browser)[1]?.payload).toMatchObject({ message_id: third.id, preview: 'call me back' })
    expect(service.rejected).toEqual([])
  })
})
