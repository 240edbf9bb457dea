import { describe, expect, it } from 'vitest'
import { registerUser } from '../helpers/app.js'
import { useSocketApp } from '../helpers/socket-app.js'
import { groupChat, history, restSend } from '../helpers/ws-client.js'

/**
 * UUIDs compare case-insensitively (RFC 9562): an id in upper case names the same object as in
 * lower case, on every route and frame. (Before: the socket opened with an upper-case id upgraded
 * but never received message.new, message.send on it answered not_found, and REST GET answered
 * 200 where POST answered 404.)
 */
describe('ids in upper case', () => {
  const h = useSocketApp()
  const up = (id: string) => id.toUpperCase()

  it('name the same conversation on every REST route', async () => {
    const { a, b, conv } = await h.pair()
    const { app } = h.t
    const call = (method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
      app.inject({ method, url: `/api/v1/chat${url}`, headers: a.auth, ...(payload ? { payload } : {}) })

    expect((await call('GET', `/conversations/${up(conv)}`)).json().id).toBe(conv)
    const sent = await call('POST', `/conversations/${up(conv)}/messages`, {
      content: 'hi',
      client_msg_id: 'AB-1',
    })
    expect(sent.statusCode).toBe(201)
    expect(sent.json()).toMatchObject({ conversation_id: conv, seq: 1, client_msg_id: 'AB-1' })
    const page = (await call('GET', `/conversations/${up(conv)}/messages`)).json()
    expect(page.items.map((m: { seq: number }) => m.seq)).toEqual([1])
    const edited = await call('PATCH', `/messages/${up(sent.json().id)}`, { content: 'edited' })
    expect(edited.json()).toMatchObject({ id: sent.json().id, content: 'edited' })
    expect((await call('POST', `/conversations/${up(conv)}/read`, { seq: 1 })).json()).toEqual({
      last_read_seq: 1,
    })
    const again = await call('POST', '/conversations', { recipient_id: up(b.id) })
    expect(again.statusCode).toBe(200)
    expect(again.json().id).toBe(conv)

    const c = await registerUser(app, 'Cid')
    const group = await groupChat(app, a, [b])
    const added = await call('POST', `/conversations/${up(group)}/members`, { user_id: up(c.id) })
    expect(added.statusCode).toBe(201)
    expect(added.json().user_id).toBe(c.id)
    expect((await call('DELETE', `/conversations/${up(group)}/members/${up(c.id)}`)).statusCode).toBe(204)
    const made = await call('POST', '/groups', { title: 'Upper', member_ids: [up(b.id)] })
    expect(
      made
        .json()
        .members.map((m: { user_id: string }) => m.user_id)
        .sort(),
    ).toEqual([a.id, b.id].sort())
  })

  it('open a conversation socket that receives and sends', async () => {
    const { a, b, conv } = await h.pair()
    const socket = await h.convSocket(a, up(conv))
    const ready = await socket.waitFor((f) => f.type === 'ready')
    expect(ready.conversation_id).toBe(conv)
    await restSend(h.t.app, b, conv, 'from bob')
    const got = await socket.waitFor((f) => f.type === 'message.new')
    expect(got).toMatchObject({ conversation_id: conv, message: { seq: 1, content: 'from bob' } })
    socket.send({ type: 'message.send', content: 'from ann', client_msg_id: 'c1' })
    const ack = await socket.waitFor((f) => f.type === 'message.ack')
    expect(ack).toMatchObject({ client_msg_id: 'c1', message: { seq: 2, conversation_id: conv } })
  })

  it('address conversations in frames on the user socket (send, read, typing, sync)', async () => {
    const { a, b, conv } = await h.pair()
    await restSend(h.t.app, b, conv, 'one')
    const socket = await h.userSocket(a)
    await socket.waitFor((f) => f.type === 'ready')
    socket.send({ type: 'sync', cursors: { [up(conv)]: 0 } })
    const replay = await socket.waitFor((f) => f.type === 'message.new')
    expect(replay).toMatchObject({ conversation_id: conv, message: { seq: 1, content: 'one' } })
    socket.send({ type: 'message.send', conversation_id: up(conv), content: 'two', client_msg_id: 'u2' })
    const ack = await socket.waitFor((f) => f.type === 'message.ack')
    expect(ack).toMatchObject({ client_msg_id: 'u2', message: { seq: 2, conversation_id: conv } })
    socket.send({ type: 'read', conversation_id: up(conv), seq: 2 })
    await socket.waitFor((f) => f.type === 'read' && f.user_id === a.id)
    expect(socket.ofType('error')).toEqual([])
    expect((await history(h.t.app, a, conv)).map((m) => m.content)).toEqual(['one', 'two'])
  })
})
