import { randomUUID } from 'node:crypto'
import { and, eq, inArray } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { type ChatEvent, conversationChannel, userChannel } from '../../src/protocol/events.js'
import { conversationMembers } from '../../src/store/schema.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'

const API = '/api/v1/chat'
const GROUP_MAX = 4

/**
 * Resolves once the wall clock is past `iso`, so the next write's millisecond timestamp is strictly
 * later. The clock is the condition itself (no event says a millisecond passed): wait out the
 * remainder on a timer rather than spinning the event loop.
 */
async function clockPast(iso: string): Promise<void> {
  const t = Date.parse(iso)
  while (Date.now() <= t) await new Promise((resolve) => setTimeout(resolve, t - Date.now() + 1))
}

describe.each(DRIVERS)('conversations on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver, env: { GROUP_MAX_MEMBERS: String(GROUP_MAX) } })
  })
  afterAll(async () => t?.close())

  const call = (user: TestUser, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url: `${API}${url}`, headers: user.auth, ...(payload ? { payload } : {}) })
  const users = <N extends string[]>(...names: N) =>
    Promise.all(names.map((n) => registerUser(t.app, n))) as Promise<{ [K in keyof N]: TestUser }>

  async function record(channel: string): Promise<ChatEvent[]> {
    const events: ChatEvent[] = []
    onTestFinished(await t.services.broker.subscribe(channel, (e) => events.push(e)))
    return events
  }

  async function openDirect(a: TestUser, b: TestUser): Promise<string> {
    const res = await call(a, 'POST', '/conversations', { recipient_id: b.id })
    expect(res.statusCode).toBe(201)
    return res.json().id
  }

  async function createGroup(owner: TestUser, members: TestUser[], title = 'Team') {
    const res = await call(owner, 'POST', '/groups', { title, member_ids: members.map((m) => m.id) })
    expect(res.statusCode).toBe(201)
    return res.json() as { id: string; created_at: string }
  }

  /** There is no API to appoint admins (see the report), so tests set the role in the database. */
  const promote = (conversationId: string, userId: string) =>
    t.database.db
      .update(conversationMembers)
      .set({ role: 'admin' })
      .where(
        and(eq(conversationMembers.conversationId, conversationId), eq(conversationMembers.userId, userId)),
      )

  async function roles(conversationId: string): Promise<Record<string, string>> {
    const rows = await t.database.db
      .select()
      .from(conversationMembers)
      .where(eq(conversationMembers.conversationId, conversationId))
    return Object.fromEntries(rows.map((r) => [r.userId, r.role]))
  }

  describe('direct', () => {
    it('creates the conversation once (201), then returns the same one to either side (200)', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const first = await call(a, 'POST', '/conversations', { recipient_id: b.id })
      const again = await call(a, 'POST', '/conversations', { recipient_id: b.id })
      const fromB = await call(b, 'POST', '/conversations', { recipient_id: a.id })
      expect([first.statusCode, again.statusCode, fromB.statusCode]).toEqual([201, 200, 200])
      const id = first.json().id
      expect(again.json().id).toBe(id)
      expect(fromB.json().id).toBe(id)
      expect(first.json()).toMatchObject({ kind: 'direct', title: null, last_seq: 0, last_message: null })
      expect(
        first
          .json()
          .members.map((m: { user_id: string }) => m.user_id)
          .sort(),
      ).toEqual([a.id, b.id].sort())
    })

    it('meets on one conversation when both users create it 20 times at once', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const events = await record(userChannel(b.id))
      const responses = await Promise.all(
        Array.from({ length: 20 }, (_, i) =>
          i % 2 === 0
            ? call(a, 'POST', '/conversations', { recipient_id: b.id })
            : call(b, 'POST', '/conversations', { recipient_id: a.id }),
        ),
      )
      expect(responses.map((r) => r.statusCode).sort((x, y) => x - y)).toEqual([...Array(19).fill(200), 201])
      const ids = new Set(responses.map((r) => r.json().id))
      expect(ids.size).toBe(1)
      const rows = await t.database.db
        .select()
        .from(conversationMembers)
        .where(inArray(conversationMembers.userId, [a.id, b.id]))
      expect(rows.map((r) => r.conversationId)).toEqual([...ids, ...ids])
      expect(events.filter((e) => e.type === 'conversation.created')).toHaveLength(1)
    })

    it('answers 404 for an unknown recipient and 422 for yourself or a malformed id, storing nothing', async () => {
      const [a] = await users('Ann')
      const cases = [
        { body: { recipient_id: randomUUID() }, status: 404 },
        { body: { recipient_id: a.id }, status: 422, path: '/body/recipient_id' },
        { body: { recipient_id: 'not-a-uuid' }, status: 422, path: '/body/recipient_id' },
        { body: {}, status: 422, path: '/body/recipient_id' },
      ]
      for (const c of cases) {
        const res = await call(a, 'POST', '/conversations', c.body)
        expect(res.statusCode, JSON.stringify(c.body)).toBe(c.status)
        expect(res.headers['content-type']).toMatch(/^application\/problem\+json/)
        if (c.path) expect(res.json().errors.map((e: { path: string }) => e.path)).toContain(c.path)
      }
      const mine = await t.database.db
        .select()
        .from(conversationMembers)
        .where(eq(conversationMembers.userId, a.id))
      expect(mine).toEqual([])
    })
  })

  describe('groups', () => {
    it('creates a group owned by the caller, listing members as public profiles', async () => {
      const [owner, b, c] = await users('Olga', 'Bob', 'Cy')
      const events = await record(userChannel(c.id))
      const res = await call(owner, 'POST', '/groups', {
        title: '  Team  ',
        member_ids: [b.id, c.id, b.id, owner.id],
      })
      expect(res.statusCode).toBe(201)
      const group = res.json()
      expect(group).toMatchObject({ kind: 'group', title: 'Team', created_by: owner.id, unread_count: 0 })
      expect(
        Object.fromEntries(group.members.map((m: { user_id: string; role: string }) => [m.user_id, m.role])),
      ).toEqual({ [owner.id]: 'owner', [b.id]: 'member', [c.id]: 'member' })
      for (const m of group.members)
        expect(Object.keys(m).sort()).toEqual(['full_name', 'last_read_seq', 'role', 'user_id'])
      expect(events).toEqual([
        {
          type: 'conversation.created',
          conversation_id: group.id,
          member_ids: expect.arrayContaining([owner.id, b.id, c.id]),
        },
      ])
      expect((await call(c, 'GET', `/conversations/${group.id}`)).statusCode).toBe(200)
    })

    it('refuses a group over GROUP_MAX_MEMBERS (422) or with an unknown member (404), storing nothing', async () => {
      const [owner, ...others] = await users('Olga', 'B', 'C', 'D', 'E')
      const tooMany = await call(owner, 'POST', '/groups', {
        title: 'Big',
        member_ids: others.map((u) => u.id),
      })
      expect(tooMany.statusCode).toBe(422)
      expect(tooMany.json().errors[0].path).toBe('/body/member_ids')
      const unknown = await call(owner, 'POST', '/groups', { title: 'X', member_ids: [randomUUID()] })
      expect(unknown.statusCode).toBe(404)
      const blank = await call(owner, 'POST', '/groups', { title: '   ', member_ids: [] })
      expect(blank.statusCode).toBe(422)
      const mine = await t.database.db
        .select()
        .from(conversationMembers)
        .where(eq(conversationMembers.userId, owner.id))
      expect(mine).toEqual([])
    })

    it('lets admins rename a group; a plain member gets 403; a direct conversation has no title', async () => {
      const [owner, admin, member] = await users('Olga', 'Adam', 'Mia')
      const { id } = await createGroup(owner, [admin, member])
      await promote(id, admin.id)
      const events = await record(conversationChannel(id))
      const refused = await call(member, 'PATCH', `/conversations/${id}`, { title: 'Mine' })
      expect(refused.statusCode).toBe(403)
      expect(refused.headers['content-type']).toMatch(/^application\/problem\+json/)
      const byAdmin = await call(admin, 'PATCH', `/conversations/${id}`, { title: '  Renamed  ' })
      expect(byAdmin.statusCode).toBe(200)
      expect(byAdmin.json().title).toBe('Renamed')
      expect((await call(owner, 'PATCH', `/conversations/${id}`, { title: 'Final' })).statusCode).toBe(200)
      expect((await call(member, 'GET', `/conversations/${id}`)).json().title).toBe('Final')
      expect(events).toEqual([
        { type: 'conversation.updated', conversation_id: id, title: 'Renamed' },
        { type: 'conversation.updated', conversation_id: id, title: 'Final' },
      ])
      const direct = await openDirect(owner, member)
      expect((await call(owner, 'PATCH', `/conversations/${direct}`, { title: 'No' })).statusCode).toBe(422)
    })

    it('lets admins add members up to GROUP_MAX_MEMBERS; a plain member gets 403', async () => {
      const [owner, member, c, d, e] = await users('Olga', 'Mia', 'Cy', 'Dee', 'Eve')
      const { id } = await createGroup(owner, [member])
      await call(owner, 'POST', `/conversations/${id}/messages`, { content: 'before Cy joined' })
      const events = await record(conversationChannel(id))
      expect((await call(member, 'POST', `/conversations/${id}/members`, { user_id: c.id })).statusCode).toBe(
        403,
      )
      const added = await call(owner, 'POST', `/conversations/${id}/members`, { user_id: c.id })
      expect(added.statusCode).toBe(201)
      expect(added.json()).toMatchObject({ user_id: c.id, role: 'member', last_read_seq: 0 })
      expect(events).toEqual([
        { type: 'member.added', conversation_id: id, user_id: c.id, role: 'member', seq: 1 },
      ])
      expect((await call(c, 'GET', `/conversations/${id}`)).statusCode).toBe(200)
      const again = await call(owner, 'POST', `/conversations/${id}/members`, { user_id: c.id })
      expect(again.statusCode).toBe(200)
      expect(events).toHaveLength(1)
      expect((await call(owner, 'POST', `/conversations/${id}/members`, { user_id: d.id })).statusCode).toBe(
        201,
      )
      const full = await call(owner, 'POST', `/conversations/${id}/members`, { user_id: e.id })
      expect(full.statusCode).toBe(422)
      expect(full.json().errors[0].path).toBe('/body/user_id')
      expect(Object.keys(await roles(id))).toHaveLength(GROUP_MAX)
      expect((await call(e, 'GET', `/conversations/${id}`)).statusCode).toBe(404)
      expect(
        (await call(owner, 'POST', `/conversations/${id}/members`, { user_id: randomUUID() })).statusCode,
      ).toBe(404)
    })

    it('lets admins remove members and anyone leave; the removed lose access at once', async () => {
      const [owner, admin, member, d] = await users('Olga', 'Adam', 'Mia', 'Dee')
      const { id } = await createGroup(owner, [admin, member, d])
      await promote(id, admin.id)
      const events = await record(conversationChannel(id))
      const dEvents = await record(userChannel(d.id))
      expect((await call(member, 'DELETE', `/conversations/${id}/members/${d.id}`)).statusCode).toBe(403)
      expect((await call(admin, 'DELETE', `/conversations/${id}/members/${d.id}`)).statusCode).toBe(204)
      for (const [method, url] of [
        ['GET', `/conversations/${id}`],
        ['GET', `/conversations/${id}/messages`],
        ['POST', `/conversations/${id}/messages`],
      ] as const) {
        const res = await call(d, method, url, method === 'POST' ? { content: 'still here?' } : undefined)
        expect(res.statusCode, `${method} ${url}`).toBe(404)
      }
      expect((await call(d, 'GET', '/conversations')).json().items).toEqual([])
      expect((await call(member, 'DELETE', `/conversations/${id}/members/${member.id}`)).statusCode).toBe(204)
      expect((await call(member, 'GET', `/conversations/${id}`)).statusCode).toBe(404)
      expect((await call(admin, 'DELETE', `/conversations/${id}/members/${owner.id}`)).statusCode).toBe(403)
      expect((await call(admin, 'DELETE', `/conversations/${id}/members/${d.id}`)).statusCode).toBe(404)
      expect(await roles(id)).toEqual({ [owner.id]: 'owner', [admin.id]: 'admin' })
      expect(events).toEqual([
        // Each removal bumps the membership version that message events carry.
        { type: 'member.removed', conversation_id: id, user_id: d.id, seq: 0, members_version: 1 },
        { type: 'member.removed', conversation_id: id, user_id: member.id, seq: 0, members_version: 2 },
      ])
      expect(dEvents).toEqual([events[0]])
    })

    it('refuses to leave a direct conversation (422)', async () => {
      const [a, b] = await users('Ann', 'Bob')
      const id = await openDirect(a, b)
      expect((await call(a, 'DELETE', `/conversations/${id}/members/${a.id}`)).statusCode).toBe(422)
    })

    it('hands ownership to an admin when the owner leaves, even over longer-serving members', async () => {
      const [owner, early, admin] = await users('Olga', 'Early', 'Adam')
      const { id } = await createGroup(owner, [early])
      await call(owner, 'POST', `/conversations/${id}/members`, { user_id: admin.id })
      await promote(id, admin.id)
      expect((await call(owner, 'DELETE', `/conversations/${id}/members/${owner.id}`)).statusCode).toBe(204)
      expect(await roles(id)).toEqual({ [early.id]: 'member', [admin.id]: 'owner' })
      expect((await call(owner, 'GET', `/conversations/${id}`)).statusCode).toBe(404)
    })

    it('hands ownership to the longest-serving member when there is no admin', async () => {
      const [owner, x, y] = await users('Olga', 'X', 'Y')
      // The one who joins first has the larger id, so a tie broken by id would pick the other.
      const [late, early] = [x, y].sort((p, q) => p.id.localeCompare(q.id)) as [TestUser, TestUser]
      const group = await createGroup(owner, [early])
      await clockPast(group.created_at)
      expect(
        (await call(owner, 'POST', `/conversations/${group.id}/members`, { user_id: late.id })).statusCode,
      ).toBe(201)
      expect((await call(owner, 'DELETE', `/conversations/${group.id}/members/${owner.id}`)).statusCode).toBe(
        204,
      )
      expect(await roles(group.id)).toEqual({ [early.id]: 'owner', [late.id]: 'member' })
    })
  })

  describe('listing', () => {
    it('lists most recent activity first, with members, last message and unread count', async () => {
      const [me, x, y, z] = await users('Me', 'Xan', 'Yu', 'Zed')
      const d1 = await openDirect(me, x)
      const d2 = await openDirect(y, me)
      const g = (await createGroup(me, [y, z], 'Crew')).id
      const send = async (u: TestUser, id: string, content: string) => {
        const res = await call(u, 'POST', `/conversations/${id}/messages`, { content })
        expect(res.statusCode).toBe(201)
        await clockPast(res.json().created_at)
      }
      await send(x, d1, 'one')
      await send(me, g, 'two')
      await send(y, d2, 'three')
      await send(y, d2, 'four')
      const res = await call(me, 'GET', '/conversations')
      expect(res.statusCode).toBe(200)
      const items = res.json().items
      expect(items.map((c: { id: string }) => c.id)).toEqual([d2, g, d1])
      expect(items.map((c: { unread_count: number }) => c.unread_count)).toEqual([2, 0, 1])
      expect(items.map((c: { last_message: { content: string } }) => c.last_message.content)).toEqual([
        'four',
        'two',
        'one',
      ])
      expect(items[0].last_message).toMatchObject({ seq: 2, sender_id: y.id, conversation_id: d2 })
      const yProfile = items[0].members.find((m: { user_id: string }) => m.user_id === y.id)
      expect(yProfile).toEqual({
        user_id: y.id,
        full_name: expect.stringMatching(/^Yu /),
        role: 'member',
        last_read_seq: 0,
      })
      expect(items[1].members).toHaveLength(3)
      expect((await call(x, 'GET', '/conversations')).json().items.map((c: { id: string }) => c.id)).toEqual([
        d1,
      ])
      expect((await call(y, 'GET', `/conversations/${d2}`)).json()).toMatchObject({
        unread_count: 0,
        last_seq: 2,
      })
    })

    it('pages with a cursor, returning each conversation exactly once in the same order', async () => {
      const [me, ...others] = await users('Me', 'A', 'B', 'C', 'D', 'E', 'F', 'G')
      // Created at once, so several share last_activity_at: the id must break the tie.
      await Promise.all(others.map((o) => openDirect(o, me)))
      const all = (await call(me, 'GET', '/conversations?limit=100')).json()
      expect(all.items).toHaveLength(7)
      expect(all.next_cursor).toBeNull()
      const seen: string[] = []
      let cursor: string | null = null
      let pages = 0
      do {
        const query: string = cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''
        const page = await call(me, 'GET', `/conversations?limit=3${query}`)
        expect(page.statusCode).toBe(200)
        seen.push(...page.json().items.map((c: { id: string }) => c.id))
        cursor = page.json().next_cursor
        pages++
      } while (cursor && pages < 10)
      expect(pages).toBe(3)
      expect(seen).toEqual(all.items.map((c: { id: string }) => c.id))
    })

    it('rejects a bad cursor or limit with 422', async () => {
      const [me] = await users('Me')
      for (const query of ['cursor=not-a-cursor', 'cursor=e30', 'limit=0', 'limit=101', 'limit=abc']) {
        const res = await call(me, 'GET', `/conversations?${query}`)
        expect(res.statusCode, query).toBe(422)
        expect(res.json().errors[0].path).toMatch(/^\/querystring\//)
      }
    })
  })
  it('lets the owner appoint and demote admins, and nobody else', async () => {
    const [owner, admin, member] = await users('Owner', 'Admin', 'Member')
    const group = await createGroup(owner, [admin, member])
    const url = (u: TestUser) => `/conversations/${group.id}/members/${u.id}`
    expect((await call(member, 'PATCH', url(admin), { role: 'admin' })).statusCode).toBe(403)
    const promoted = await call(owner, 'PATCH', url(admin), { role: 'admin' })
    expect(promoted.statusCode).toBe(200)
    expect(promoted.json()).toMatchObject({ user_id: admin.id, role: 'admin' })
    // An admin may manage members but not roles.
    expect((await call(admin, 'PATCH', url(member), { role: 'admin' })).statusCode).toBe(403)
    expect((await call(owner, 'PATCH', url(owner), { role: 'member' })).statusCode).toBe(422)
    expect((await call(owner, 'PATCH', url(admin), { role: 'owner' })).statusCode).toBe(422)
    expect((await call(owner, 'PATCH', url(admin), { role: 'member' })).json().role).toBe('member')
    expect(await roles(group.id)).toMatchObject({
      [owner.id]: 'owner',
      [admin.id]: 'member',
      [member.id]: 'member',
    })
  })
})
