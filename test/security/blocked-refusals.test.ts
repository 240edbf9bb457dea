import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { registerUser, startTestApp, type TestApp } from '../helpers/app.js'
import { directChat, groupChat, TestSocket } from '../helpers/ws-client.js'
import { databaseDigest } from './fixtures.js'

/**
 * Issue 15's "a blocked user is refused everywhere named above": each way in, over REST and the
 * socket, answers 403 `/problems/blocked` (error code `blocked`) and changes nothing.
 */
describe('blocked users', () => {
  let t: TestApp
  const sockets: TestSocket[] = []
  beforeAll(async () => {
    t = await startTestApp()
    await t.listen()
  })
  afterAll(async () => {
    for (const s of sockets) s.close()
    await t?.close()
  })

  it('refuses a blocked user everywhere a block applies, with 403 blocked (error code blocked over WebSocket)', async () => {
    const blocker = await registerUser(t.app, 'Blocker')
    const blocked = await registerUser(t.app, 'Blocked')
    const third = await registerUser(t.app, 'Third')
    const dm = await directChat(t.app, blocker, blocked)
    const put = await t.app.inject({
      method: 'PUT',
      url: `/api/v1/users/me/blocks/${blocked.id}`,
      headers: blocker.auth,
    })
    expect(put.statusCode).toBe(204)
    const group = await groupChat(t.app, blocked, [third])
    const attempts = {
      'send in the direct conversation': {
        url: `/api/v1/chat/conversations/${dm}/messages`,
        payload: { content: 'hi' },
      },
      'create a group with the blocker': {
        url: '/api/v1/chat/groups',
        payload: { title: 'g', member_ids: [blocker.id] },
      },
      'add the blocker to a group': {
        url: `/api/v1/chat/conversations/${group}/members`,
        payload: { user_id: blocker.id },
      },
    }
    const failures: string[] = []
    const before = await databaseDigest(t.database)
    for (const [what, { url, payload }] of Object.entries(attempts)) {
      const res = await t.app.inject({ method: 'POST', url, headers: blocked.auth, payload })
      if (res.statusCode !== 403 || res.json().type !== '/problems/blocked')
        failures.push(`${what}: ${res.statusCode} ${res.body.slice(0, 200)}`)
    }
    // A new direct conversation, had there been none: the pair blocker/third has none yet.
    await t.app.inject({ method: 'PUT', url: `/api/v1/users/me/blocks/${third.id}`, headers: blocker.auth })
    const open = await t.app.inject({
      method: 'POST',
      url: '/api/v1/chat/conversations',
      headers: third.auth,
      payload: { recipient_id: blocker.id },
    })
    if (open.statusCode !== 403) failures.push(`open a direct conversation: ${open.statusCode}`)
    const s = await TestSocket.open(`${t.url}/api/v1/chat/ws`, { token: blocked.token })
    sockets.push(s)
    s.send({ type: 'message.send', conversation_id: dm, content: 'hi', client_msg_id: 'b-1' })
    const answer = await s.waitFor((f) => f.type === 'error')
    if (answer.code !== 'blocked') failures.push(`message.send over the socket: ${JSON.stringify(answer)}`)
    const after = await databaseDigest(t.database)
    if (after.hash !== before.hash) failures.push('a refused attempt changed the database')
    expect(failures).toEqual([])
  })
})
