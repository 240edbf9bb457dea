import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DRIVERS, registerUser, startTestApp, type TestApp } from '../helpers/app.js'
import { TestSocket } from '../helpers/ws-client.js'

describe.each(DRIVERS)('smoke on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
    await t.listen()
  })
  afterAll(async () => t?.close())

  it('registers, opens a conversation, chats over a socket', async () => {
    const a = await registerUser(t.app, 'Ann')
    const b = await registerUser(t.app, 'Bob')
    const conv = await t.app.inject({
      method: 'POST',
      url: '/api/v1/chat/conversations',
      headers: a.auth,
      payload: { recipient_id: b.id },
    })
    expect(conv.statusCode).toBe(201)
    const id = conv.json().id as string
    const sa = await TestSocket.open(`${t.url}/api/v1/chat/ws/conversations/${id}`, { token: a.token })
    const sb = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: b.token })
    sa.send({ type: 'message.send', content: 'hello', client_msg_id: 'c1' })
    const ack = await sa.waitFor((f) => f.type === 'message.ack')
    expect(ack.message).toMatchObject({ seq: 1, content: 'hello' })
    const got = await sb.waitFor((f) => f.type === 'message.new')
    expect(got).toMatchObject({ conversation_id: id, message: { seq: 1, content: 'hello' } })
    sa.close()
    sb.close()
  })
})
