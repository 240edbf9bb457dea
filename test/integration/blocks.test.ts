import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'

const API = '/api/v1'

/** Issue 15, "People": blocking, and what a block refuses (docs/moderation.md). */
describe.each(DRIVERS)('blocks on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
  })
  afterAll(async () => t?.close())

  const call = (user: TestUser, method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url: `${API}${url}`, headers: user.auth, ...(payload ? { payload } : {}) })
  const users = <N extends string[]>(...names: N) =>
    Promise.all(names.map((n) => registerUser(t.app, n))) as Promise<{ [K in keyof N]: TestUser }>
  const block = async (a: TestUser, b: TestUser) =>
    expect((await call(a, 'PUT', `/users/me/blocks/${b.id}`)).statusCode).toBe(204)
  const unblock = async (a: TestUser, b: TestUser) =>
    expect((await call(a, 'DELETE', `/users/me/blocks/${b.id}`)).statusCode).toBe(204)
  const send = (u: TestUser, conv: string, content: string) =>
    call(u, 'POST', `/chat/conversations/${conv}/messages`, { content })
  const openDirect = (a: TestUser, b: TestUser) =>
    call(a, 'POST', '/chat/conversations', { recipient_id: b.id })
  const expectBlocked = (res: { statusCode: number; json: () => { type: string } }) => {
    expect(res.statusCode).toBe(403)
    expect(res.json().type).toBe('/problems/blocked')
  }

  it('blocks and unblocks idempotently, and lists blocks newest first in keyset pages', async () => {
    const [a, b, c, d] = await users('Ann', 'Bob', 'Cid', 'Dan')
    await block(a, b)
    await block(a, b)
    await block(a, c)
    await block(a, d)
    await unblock(a, d)
    await unblock(a, d)
    const first = await call(a, 'GET', '/users/me/blocks?limit=1')
    expect(first.statusCode).toBe(200)
    const page1 = first.json()
    expect(page1.items.map((i: { user_id: string }) => i.user_id)).toEqual([c.id])
    expect(page1.items[0]).toMatchObject({ full_name: expect.stringContaining('Cid') })
    const page2 = (await call(a, 'GET', `/users/me/blocks?limit=1&cursor=${page1.next_cursor}`)).json()
    expect(page2.items.map((i: { user_id: string }) => i.user_id)).toEqual([b.id])
    expect(page2.next_cursor).toBeNull()
    // Nobody else sees A's list.
    expect((await call(b, 'GET', '/users/me/blocks')).json().items).toEqual([])
  })

  it('refuses blocking yourself (422) and an unknown user (404); a forged cursor is a 422', async () => {
    const [a] = await users('Ann')
    expect((await call(a, 'PUT', `/users/me/blocks/${a.id}`)).statusCode).toBe(422)
    expect((await call(a, 'PUT', '/users/me/blocks/00000000-0000-4000-8000-000000000000')).statusCode).toBe(
      404,
    )
    expect((await call(a, 'GET', '/users/me/blocks?cursor=bm9wZQ')).statusCode).toBe(422)
  })

  it('closes an existing direct conversation both ways while either blocks the other; it stays readable', async () => {
    const [a, b] = await users('Ann', 'Bob')
    const conv = (await openDirect(a, b)).json().id
    expect((await send(b, conv, 'before')).statusCode).toBe(201)
    await block(a, b)
    expectBlocked(await send(b, conv, 'from the blocked'))
    expectBlocked(await send(a, conv, 'from the blocker'))
    // Readable by both, and marked closed.
    for (const u of [a, b]) {
      const items = (await call(u, 'GET', `/chat/conversations/${conv}/messages`)).json().items
      expect(items.map((m: { content: string }) => m.content)).toEqual(['before'])
      expect((await call(u, 'GET', `/chat/conversations/${conv}`)).json().blocked).toBe(true)
    }
    // Opening it again returns it (200), closed.
    const again = await openDirect(b, a)
    expect(again.statusCode).toBe(200)
    expect(again.json()).toMatchObject({ id: conv, blocked: true })
    // Both block; one lifting theirs leaves it closed; the second reopens it.
    await block(b, a)
    await unblock(a, b)
    expectBlocked(await send(a, conv, 'still closed'))
    await unblock(b, a)
    expect((await send(a, conv, 'open again')).statusCode).toBe(201)
    expect((await call(a, 'GET', `/chat/conversations/${conv}`)).json().blocked).toBe(false)
  })

  it('refuses a new direct conversation either way while a block stands', async () => {
    const [a, b] = await users('Ann', 'Bob')
    await block(a, b)
    expectBlocked(await openDirect(b, a))
    expectBlocked(await openDirect(a, b))
    await unblock(a, b)
    const created = await openDirect(b, a)
    expect(created.statusCode).toBe(201)
    expect(created.json().blocked).toBe(false)
  })

  it('refuses adding a user who blocks you to a group, naming nobody; the blocker may add the blocked', async () => {
    const [a, b, c] = await users('Ann', 'Bob', 'Cid')
    await block(b, a)
    const refused = await call(a, 'POST', '/chat/groups', { title: 'g', member_ids: [c.id, b.id] })
    expectBlocked(refused)
    expect(refused.body).not.toContain(b.id)
    const group = (await call(a, 'POST', '/chat/groups', { title: 'g', member_ids: [c.id] })).json().id
    expectBlocked(await call(a, 'POST', `/chat/conversations/${group}/members`, { user_id: b.id }))
    // The blocker chooses whom they are with: B may put A in a group.
    const theirs = await call(b, 'POST', '/chat/groups', { title: 'h', member_ids: [a.id] })
    expect(theirs.statusCode).toBe(201)
    // In a shared group messages still flow both ways (clients collapse them with the block list).
    expect((await send(a, theirs.json().id, 'hello')).statusCode).toBe(201)
    expect((await send(b, theirs.json().id, 'hi')).statusCode).toBe(201)
  })

  it('removes the blocks a deleted account made and reopens its direct conversations', async () => {
    const [a, b] = await users('Ann', 'Bob')
    const conv = (await openDirect(a, b)).json().id
    await block(a, b)
    await block(b, a)
    const del = await call(a, 'DELETE', '/users/me', { password: a.password })
    expect(del.statusCode).toBe(204)
    // B's block of A is B's choice and stays; A's of B is gone.
    const listed = (await call(b, 'GET', '/users/me/blocks')).json().items
    expect(listed.map((i: { user_id: string }) => i.user_id)).toEqual([a.id])
    expect(await t.services.blocks.blockersOf(b.id)).toEqual([])
    expect((await call(b, 'GET', `/chat/conversations/${conv}`)).json().blocked).toBe(true)
    await unblock(b, a)
    expect((await call(b, 'GET', `/chat/conversations/${conv}`)).json().blocked).toBe(false)
  })
})
