import { eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { users } from '../../src/store/schema.js'
import { redisUrl, registerUser, startInstances, type TestUser, uniquePrefix } from '../helpers/app.js'
import { TestSocket } from '../helpers/ws-client.js'

/**
 * Two instances behind one PostgreSQL and one Redis: a suspension or a ban made through one
 * instance reaches the sockets the user holds on the other at once (issue 15).
 */
describe('moderation across two instances', () => {
  let cluster: Awaited<ReturnType<typeof startInstances>>
  const sockets: TestSocket[] = []
  let op: TestUser

  beforeAll(async () => {
    cluster = await startInstances(2, { url: redisUrl(), prefix: uniquePrefix('moderation') })
    op = await registerUser(cluster.node(0).app, 'Operator')
    await cluster.node(0).database.db.update(users).set({ role: 'operator' }).where(eq(users.id, op.id))
  })
  afterAll(async () => {
    for (const s of sockets) s.close()
    await cluster?.close()
  })

  const open = async (i: number, path: string, user: TestUser) => {
    const s = await TestSocket.open(`${cluster.node(i).url}${path}`, { token: user.token })
    sockets.push(s)
    await s.waitFor((f) => f.type === 'ready')
    return s
  }
  const call = (
    i: number,
    user: TestUser,
    method: 'GET' | 'POST' | 'PUT' | 'DELETE',
    url: string,
    payload?: object,
  ) => cluster.node(i).app.inject({ method, url, headers: user.auth, ...(payload ? { payload } : {}) })
  const group = async (owner: TestUser, members: TestUser[]) => {
    const res = await call(0, owner, 'POST', '/api/v1/chat/groups', {
      title: 'g',
      member_ids: members.map((m) => m.id),
    })
    expect(res.statusCode).toBe(201)
    return res.json().id as string
  }

  it('a suspension on instance 0 closes the user’s sockets on instance 1 at once (4403)', async () => {
    const u = await registerUser(cluster.node(0).app, 'Suspended')
    const owner = await registerUser(cluster.node(0).app, 'Owner')
    const id = await group(owner, [u])
    const userSock = await open(1, '/api/v1/chat/ws', u)
    const convSock = await open(1, `/api/v1/chat/ws/conversations/${id}`, u)
    expect((await call(0, op, 'PUT', `/api/v1/admin/users/${u.id}/suspension`)).statusCode).toBe(200)
    expect((await userSock.waitClose()).code).toBe(4403)
    expect((await convSock.waitClose()).code).toBe(4403)
    // And the token cannot open a new one on either instance.
    for (const i of [0, 1]) {
      const { status } = await TestSocket.refusal(`${cluster.node(i).url}/api/v1/chat/ws`, { token: u.token })
      expect(status).toBe(401)
    }
  })

  it('a ban on instance 0 stops delivery to the member’s sockets on instance 1 at once', async () => {
    const owner = await registerUser(cluster.node(0).app, 'BanOwner')
    const gone = await registerUser(cluster.node(0).app, 'Banned')
    const stays = await registerUser(cluster.node(0).app, 'Stays')
    const id = await group(owner, [gone, stays])
    const goneUser = await open(1, '/api/v1/chat/ws', gone)
    const goneConv = await open(1, `/api/v1/chat/ws/conversations/${id}`, gone)
    // A member who stays, on the banned user's instance: once it has a later message, that
    // instance has had it too, so "nothing arrived" for the banned user is an answer, not "not yet".
    const staysUser = await open(1, '/api/v1/chat/ws', stays)
    expect(
      (await call(0, owner, 'POST', `/api/v1/chat/conversations/${id}/bans/${gone.id}`)).statusCode,
    ).toBe(204)
    await goneUser.waitFor((f) => f.type === 'member.removed' && f.conversation_id === id)
    expect((await goneConv.waitClose()).code).toBe(4403)
    const sent = await call(0, owner, 'POST', `/api/v1/chat/conversations/${id}/messages`, {
      content: 'after the ban',
    })
    expect(sent.statusCode).toBe(201)
    await staysUser.waitFor((f) => f.type === 'message.new' && f.conversation_id === id)
    await goneUser.settle()
    expect(goneUser.frames.filter((f) => f.type === 'message.new')).toEqual([])
    // Re-adding through the other instance is refused as well.
    const readd = await call(1, owner, 'POST', `/api/v1/chat/conversations/${id}/members`, {
      user_id: gone.id,
    })
    expect(readd.statusCode).toBe(409)
  })
})
