import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { newId } from '../../src/lib/ids.js'
import type { DeliveryChannel, OutboxEvent } from '../../src/services/outbox-channel.js'
import { createPushChannel } from '../../src/services/push.js'
import { redisUrl, registerUser, startInstances, type TestApp, uniquePrefix } from '../helpers/app.js'
import { FakePushService } from '../helpers/push-service.js'
import { eventually, groupChat, restSend, TestSocket, userSocketUrl } from '../helpers/ws-client.js'

/**
 * "Offline" means offline on every instance: the push channel of instance A leaves out a member
 * whose only socket is on instance B (presence is shared through Redis), and pushes to them once
 * that socket is gone.
 */
describe('Web Push across two instances', () => {
  let cluster: Awaited<ReturnType<typeof startInstances>>
  let service: FakePushService
  let a: TestApp
  let b: TestApp
  let channel: DeliveryChannel

  beforeAll(async () => {
    service = await FakePushService.start()
    cluster = await startInstances(
      2,
      { url: redisUrl(), prefix: uniquePrefix('push') },
      { PUSH_ALLOW_PRIVATE: 'true', PUSH_ENABLED: 'false' },
    )
    a = cluster.node(0)
    b = cluster.node(1)
    channel = createPushChannel({
      db: a.database.db,
      presence: a.services.presence.counts,
      subscriptions: a.services.push,
      config: a.services.config.push,
      ca: service.ca,
    })
  })
  afterAll(async () => {
    await cluster?.close()
    await service?.close()
  })

  it('a member connected to instance B gets no push decided on instance A, until they disconnect', async () => {
    const owner = await registerUser(a.app, 'Owner')
    const member = await registerUser(a.app, 'Member')
    const group = await groupChat(a.app, owner, [member])
    const browser = service.browser()
    const sub = await b.app.inject({
      method: 'POST',
      url: '/api/v1/users/me/push-subscriptions',
      headers: member.auth,
      payload: browser.subscription(),
    })
    expect(sub.statusCode).toBe(201)
    const eventOf = (message: Awaited<ReturnType<typeof restSend>>): OutboxEvent => ({
      id: newId(),
      type: 'message.created',
      occurredAt: String(message.created_at),
      conversationId: group,
      data: { conversation_id: group, message },
    })

    const socket = await TestSocket.open(userSocketUrl(b.url), { token: member.token })
    await socket.waitFor((f) => f.type === 'ready')
    const online = eventOf(await restSend(a.app, owner, group, 'seen live on B'))
    expect(await channel.targets(online)).toEqual([])
    socket.close()
    await eventually(
      'the member offline everywhere',
      async () => !(await a.services.presence.counts.onlineAmong([member.id])).has(member.id),
    )
    const offline = eventOf(await restSend(a.app, owner, group, 'while away'))
    expect(await channel.targets(offline)).toEqual([sub.json().id])
    // Came online (on B) between the choice of targets and the delivery: nothing is sent either.
    const again = await TestSocket.open(userSocketUrl(b.url), { token: member.token })
    await again.waitFor((f) => f.type === 'ready')
    expect(await channel.deliver(offline, sub.json().id, 1)).toEqual({ kind: 'delivered' })
    expect(service.to(browser)).toEqual([])
    again.close()
    await eventually(
      'the member offline again',
      async () => !(await a.services.presence.counts.onlineAmong([member.id])).has(member.id),
    )
    expect(await channel.deliver(offline, sub.json().id, 2)).toEqual({ kind: 'delivered' })
    expect(service.to(browser).map((p) => p.payload.preview)).toEqual(['while away'])
  })
})
