import { randomUUID } from 'node:crypto'
import { asc, eq } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { attachments, conversationMembers, conversations, messages } from '../../src/store/schema.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { sendFile } from '../helpers/attachments.js'

const API = '/api/v1/chat'
type Method = 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE'

/** What a route is aimed at: `{id}` is the conversation, or the message on /messages routes. */
interface Target {
  conversationId: string
  messageId: string
  memberId: string
  /** A file sent in the conversation (for /attachments/{id}). */
  attachmentId: string
  caller: TestUser
}

interface Route {
  method: Method
  /** As the OpenAPI document spells it, so the table can be checked against the app's routes. */
  path: string
  userId?: (t: Target) => string
  body?: (t: Target) => object
}

/** Every chat route that names a conversation or a message. */
const ROUTES: Route[] = [
  { method: 'GET', path: '/conversations/{id}' },
  { method: 'HEAD', path: '/conversations/{id}' },
  { method: 'PATCH', path: '/conversations/{id}', body: () => ({ title: 'taken over' }) },
  { method: 'POST', path: '/conversations/{id}/members', body: (t) => ({ user_id: t.caller.id }) },
  { method: 'DELETE', path: '/conversations/{id}/members/{user_id}', userId: (t) => t.memberId },
  { method: 'DELETE', path: '/conversations/{id}/members/{user_id}', userId: (t) => t.caller.id },
  {
    method: 'PATCH',
    path: '/conversations/{id}/members/{user_id}',
    userId: (t) => t.memberId,
    body: () => ({ role: 'admin' }),
  },
  { method: 'GET', path: '/conversations/{id}/messages' },
  { method: 'HEAD', path: '/conversations/{id}/messages' },
  { method: 'POST', path: '/conversations/{id}/messages', body: () => ({ content: 'let me in' }) },
  {
    method: 'POST',
    path: '/conversations/{id}/messages',
    body: () => ({ content: 'x', client_msg_id: 'c1' }),
  },
  { method: 'POST', path: '/conversations/{id}/read', body: () => ({ seq: 1 }) },
  { method: 'PATCH', path: '/messages/{id}', body: () => ({ content: 'edited by a stranger' }) },
  { method: 'DELETE', path: '/messages/{id}' },
  {
    method: 'POST',
    path: '/conversations/{id}/attachments',
    body: () => ({ filename: 'a.txt', content_type: 'text/plain', size: 1 }),
  },
  { method: 'GET', path: '/attachments/{id}' },
  { method: 'HEAD', path: '/attachments/{id}' },
  { method: 'GET', path: '/messages/{id}/replies' },
  { method: 'HEAD', path: '/messages/{id}/replies' },
  { method: 'PUT', path: '/messages/{id}/reactions/{emoji}' },
  { method: 'DELETE', path: '/messages/{id}/reactions/{emoji}' },
  { method: 'PUT', path: '/messages/{id}/pin' },
  { method: 'DELETE', path: '/messages/{id}/pin' },
  { method: 'GET', path: '/conversations/{id}/pins' },
  { method: 'HEAD', path: '/conversations/{id}/pins' },
  { method: 'POST', path: '/messages/{id}/report', body: () => ({ reason: 'spam' }) },
  { method: 'POST', path: '/conversations/{id}/bans/{user_id}', userId: (t) => t.memberId },
  { method: 'DELETE', path: '/conversations/{id}/bans/{user_id}', userId: (t) => t.memberId },
  { method: 'GET', path: '/conversations/{id}/bans' },
  { method: 'HEAD', path: '/conversations/{id}/bans' },
  { method: 'PUT', path: '/conversations/{id}/retention', body: () => ({ days: 1 }) },
  { method: 'PUT', path: '/conversations/{id}/mute', body: () => ({}) },
  { method: 'DELETE', path: '/conversations/{id}/mute' },
]

describe.each(DRIVERS)('chat authorization on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
  })
  afterAll(async () => t?.close())

  function request(route: Route, target: Target) {
    const id = route.path.startsWith('/messages')
      ? target.messageId
      : route.path.startsWith('/attachments')
        ? target.attachmentId
        : target.conversationId
    const url = route.path
      .replace('{id}', id)
      .replace('{user_id}', route.userId?.(target) ?? '')
      .replace('{emoji}', encodeURIComponent('👍'))
    const body = route.body?.(target)
    return t.app.inject({
      method: route.method,
      url: `${API}${url}`,
      headers: target.caller.auth,
      ...(body ? { payload: body } : {}),
    })
  }

  /** Everything stored about a conversation, to show that a refused request changed nothing. */
  async function snapshot(conversationId: string) {
    const { db } = t.database
    return {
      conversation: await db.select().from(conversations).where(eq(conversations.id, conversationId)),
      members: await db
        .select()
        .from(conversationMembers)
        .where(eq(conversationMembers.conversationId, conversationId))
        .orderBy(asc(conversationMembers.userId)),
      messages: await db
        .select()
        .from(messages)
        .where(eq(messages.conversationId, conversationId))
        .orderBy(asc(messages.seq)),
      attachments: await db
        .select()
        .from(attachments)
        .where(eq(attachments.conversationId, conversationId))
        .orderBy(asc(attachments.id)),
    }
  }

  it('lists every chat route that names a conversation or message in the table', async () => {
    const doc = (await t.app.inject({ method: 'GET', url: '/openapi.json' })).json()
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(
      ([path, ops]) =>
        path.startsWith(API) && path.includes('{id}')
          ? Object.keys(ops).map((m) => `${m.toUpperCase()} ${path.slice(API.length)}`)
          : [],
    )
    const tabled = new Set(ROUTES.map((r) => `${r.method} ${r.path}`))
    expect(documented.length).toBeGreaterThan(0)
    expect(documented.filter((r) => !tabled.has(r))).toEqual([])
  })

  it('answers a non-member 404 on every route, exactly as for an unknown id, and changes nothing', async () => {
    const [owner, member, stranger, leaver] = (await Promise.all(
      ['Olga', 'Mia', 'Stan', 'Lea'].map((n) => registerUser(t.app, n)),
    )) as [TestUser, TestUser, TestUser, TestUser]
    const post = (u: TestUser, url: string, payload: object) =>
      t.app.inject({ method: 'POST', url: `${API}${url}`, headers: u.auth, payload })
    const groupId = (
      await post(owner, '/groups', { title: 'Private', member_ids: [member.id, leaver.id] })
    ).json().id
    const directId = (await post(owner, '/conversations', { recipient_id: member.id })).json().id
    const groupMsg = (await post(member, `/conversations/${groupId}/messages`, { content: 'secret' })).json()
      .id
    const directMsg = (
      await post(member, `/conversations/${directId}/messages`, { content: 'secret' })
    ).json().id
    const groupFile = await sendFile(t, member, groupId)
    const directFile = await sendFile(t, member, directId)
    const left = await t.app.inject({
      method: 'DELETE',
      url: `${API}/conversations/${groupId}/members/${leaver.id}`,
      headers: leaver.auth,
    })
    expect(left.statusCode).toBe(204)

    const group = {
      conversationId: groupId,
      messageId: groupMsg,
      memberId: member.id,
      attachmentId: groupFile,
    }
    const direct = {
      conversationId: directId,
      messageId: directMsg,
      memberId: member.id,
      attachmentId: directFile,
    }
    const cases: { label: string; target: Target }[] = [
      {
        label: 'stranger, group',
        target: { ...group, caller: stranger },
      },
      {
        label: 'stranger, direct',
        target: { ...direct, caller: stranger },
      },
      {
        label: 'former member, group',
        target: { ...group, caller: leaver },
      },
    ]
    for (const { label, target } of cases) {
      const before = await snapshot(target.conversationId)
      const unknown: Target = {
        ...target,
        conversationId: randomUUID(),
        messageId: randomUUID(),
        attachmentId: randomUUID(),
      }
      const got: string[] = []
      const want: string[] = []
      for (const route of ROUTES) {
        const name = `${label}: ${route.method} ${route.path}`
        const [real, missing] = [await request(route, target), await request(route, unknown)]
        const shape = (r: typeof real) =>
          route.method === 'HEAD'
            ? `${r.statusCode} ${r.headers['content-type']}`
            : `${r.statusCode} ${r.headers['content-type']} ${JSON.stringify({ ...r.json(), instance: undefined })}`
        got.push(`${name} → ${shape(real)}`)
        want.push(`${name} → ${shape(missing)}`)
        expect(real.statusCode, name).toBe(404)
        expect(real.headers['content-type'], name).toMatch(/^application\/problem\+json/)
      }
      expect(got).toEqual(want)
      expect(await snapshot(target.conversationId), label).toEqual(before)
    }

    const listed = async (u: TestUser) =>
      (await t.app.inject({ method: 'GET', url: `${API}/conversations`, headers: u.auth })).json().items
    expect(await listed(stranger)).toEqual([])
    expect(await listed(leaver)).toEqual([])
  })
})
