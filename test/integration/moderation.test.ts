import { eq, sql } from 'drizzle-orm'
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest'
import { type ChatEvent, conversationChannel } from '../../src/protocol/events.js'
import { auditLog, users } from '../../src/store/schema.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'

/**
 * Issue 15, moderation, on PostgreSQL and PGlite: the operator role, reports with their snapshot,
 * the admin API (reports, suspension, any message, users, audit log), group bans, and the audit
 * log's append-only rule enforced by the database itself.
 */
type Method = 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH'

describe.each(DRIVERS)('moderation on %s', (driver) => {
  let t: TestApp
  let op: TestUser
  beforeAll(async () => {
    t = await startTestApp({ driver })
    op = await registerUser(t.app, 'Operator')
    await t.database.db.update(users).set({ role: 'operator' }).where(eq(users.id, op.id))
  })
  afterAll(async () => t?.close())

  const call = (user: TestUser | undefined, method: Method, url: string, payload?: object) =>
    t.app.inject({
      method,
      url: `/api/v1${url}`,
      headers: user?.auth ?? {},
      ...(payload ? { payload } : {}),
    })
  const people = <N extends string[]>(...names: N) =>
    Promise.all(names.map((n) => registerUser(t.app, n))) as Promise<{ [K in keyof N]: TestUser }>
  async function group(owner: TestUser, members: TestUser[]): Promise<string> {
    const res = await call(owner, 'POST', '/chat/groups', {
      title: 'G',
      member_ids: members.map((m) => m.id),
    })
    expect(res.statusCode).toBe(201)
    return res.json().id
  }
  async function send(u: TestUser, conv: string, content: string) {
    const res = await call(u, 'POST', `/chat/conversations/${conv}/messages`, { content })
    expect(res.statusCode, res.body).toBe(201)
    return res.json() as { id: string; seq: number }
  }
  async function record(conversationId: string): Promise<ChatEvent[]> {
    const events: ChatEvent[] = []
    onTestFinished(
      await t.services.broker.subscribe(conversationChannel(conversationId), (e) => events.push(e)),
    )
    return events
  }
  const auditOf = async (targetId: string) =>
    (await call(op, 'GET', `/admin/audit-log?target_id=${targetId}`)).json().items as {
      action: string
      actor_id: string
      details: Record<string, unknown>
    }[]
  const problemType = (res: { json: () => { type: string } }) => res.json().type

  describe('roles', () => {
    it('an operator is a role: shown in the user view, and the only way into /admin', async () => {
      const [u] = await people('Plain')
      expect((await call(u, 'GET', '/auth/me')).json()).toMatchObject({ role: 'user', is_superuser: false })
      expect((await call(op, 'GET', '/auth/me')).json()).toMatchObject({
        role: 'operator',
        is_superuser: true,
      })
      expect((await call(u, 'GET', '/admin/reports')).statusCode).toBe(403)
      expect((await call(op, 'GET', '/admin/reports')).statusCode).toBe(200)
    })
  })

  describe('reports', () => {
    it('a member reports a message once; the report keeps the message as it was', async () => {
      const [a, b, stranger] = await people('A', 'B', 'S')
      const conv = await group(a, [b])
      const msg = await send(a, conv, 'rude words')
      const first = await call(b, 'POST', `/chat/messages/${msg.id}/report`, {
        reason: 'harassment',
        note: ' look ',
      })
      expect(first.statusCode, first.body).toBe(201)
      expect(first.json()).toMatchObject({
        conversation_id: conv,
        message_id: msg.id,
        reporter_id: b.id,
        reason: 'harassment',
        note: 'look',
        status: 'open',
        message: { seq: msg.seq, sender_id: a.id, content: 'rude words', edited_at: null, attachments: [] },
      })
      // The same reporter again: the open report, not a second one.
      const again = await call(b, 'POST', `/chat/messages/${msg.id}/report`, { reason: 'spam' })
      expect(again.statusCode).toBe(200)
      expect(again.json()).toMatchObject({ id: first.json().id, reason: 'harassment' })
      // Edited afterwards: the snapshot stays as reported.
      expect((await call(a, 'PATCH', `/chat/messages/${msg.id}`, { content: 'nice words' })).statusCode).toBe(
        200,
      )
      const listed = (await call(op, 'GET', `/admin/reports?conversation_id=${conv}`)).json().items
      expect(listed).toHaveLength(1)
      expect(listed[0].message.content).toBe('rude words')
      // A non-member learns nothing; nobody reports their own message.
      expect(
        (await call(stranger, 'POST', `/chat/messages/${msg.id}/report`, { reason: 'spam' })).statusCode,
      ).toBe(404)
      expect((await call(a, 'POST', `/chat/messages/${msg.id}/report`, { reason: 'spam' })).statusCode).toBe(
        422,
      )
      const bad = await call(b, 'POST', `/chat/messages/${msg.id}/report`, { reason: 'boring' })
      expect(bad.statusCode).toBe(422)
      const long = await call(b, 'POST', `/chat/messages/${msg.id}/report`, {
        reason: 'spam',
        note: 'x'.repeat(1001),
      })
      expect(long.statusCode).toBe(422)
    })

    it('lists reports newest first by status and reason, in keyset pages', async () => {
      const [a, b, c] = await people('A', 'B', 'C')
      const conv = await group(a, [b, c])
      const ids: string[] = []
      for (const [i, reason] of ['spam', 'spam', 'hate'].entries()) {
        const m = await send(a, conv, `m${i}`)
        ids.push((await call(b, 'POST', `/chat/messages/${m.id}/report`, { reason })).json().id)
      }
      const p1 = (await call(op, 'GET', `/admin/reports?conversation_id=${conv}&limit=2`)).json()
      expect(p1.items.map((r: { id: string }) => r.id)).toEqual([ids[2], ids[1]])
      const p2 = (
        await call(op, 'GET', `/admin/reports?conversation_id=${conv}&limit=2&cursor=${p1.next_cursor}`)
      ).json()
      expect(p2).toEqual({ items: [expect.objectContaining({ id: ids[0] })], next_cursor: null })
      const spam = (await call(op, 'GET', `/admin/reports?conversation_id=${conv}&reason=spam`)).json().items
      expect(spam.map((r: { id: string }) => r.id)).toEqual([ids[1], ids[0]])
      const resolved = (
        await call(op, 'GET', `/admin/reports?conversation_id=${conv}&status=resolved`)
      ).json()
      expect(resolved.items).toEqual([])
      expect((await call(op, 'GET', '/admin/reports?cursor=bm90LWEtY3Vyc29y')).statusCode).toBe(422)
    })

    it('dismiss resolves once, with its audit entry; a second resolution is 409 and writes nothing', async () => {
      const [a, b] = await people('A', 'B')
      const conv = await group(a, [b])
      const m = await send(a, conv, 'meh')
      const report = (await call(b, 'POST', `/chat/messages/${m.id}/report`, { reason: 'other' })).json()
      const res = await call(op, 'POST', `/admin/reports/${report.id}/resolve`, { action: 'dismiss' })
      expect(res.statusCode, res.body).toBe(200)
      expect(res.json()).toMatchObject({ status: 'resolved', resolution: 'dismiss', resolved_by: op.id })
      const again = await call(op, 'POST', `/admin/reports/${report.id}/resolve`, {
        action: 'delete_message',
      })
      expect(again.statusCode).toBe(409)
      expect(await auditOf(report.id)).toEqual([
        expect.objectContaining({
          action: 'report.resolve',
          actor_id: op.id,
          details: expect.objectContaining({ resolution: 'dismiss' }),
        }),
      ])
      // The message was left alone, and a new report may be opened now the old one is closed.
      expect((await call(b, 'POST', `/chat/messages/${m.id}/report`, { reason: 'spam' })).statusCode).toBe(
        201,
      )
      expect(
        (await call(op, 'POST', `/admin/reports/${a.id}/resolve`, { action: 'dismiss' })).statusCode,
      ).toBe(404)
    })

    it('delete_message deletes it by the members’ path: tombstone, event, audit', async () => {
      const [a, b] = await people('A', 'B')
      const conv = await group(a, [b])
      const m = await send(a, conv, 'spam spam')
      await call(a, 'PUT', `/chat/messages/${m.id}/pin`)
      const report = (await call(b, 'POST', `/chat/messages/${m.id}/report`, { reason: 'spam' })).json()
      const events = await record(conv)
      const res = await call(op, 'POST', `/admin/reports/${report.id}/resolve`, { action: 'delete_message' })
      expect(res.statusCode, res.body).toBe(200)
      expect(res.json().message.content).toBe('spam spam')
      const history = (await call(b, 'GET', `/chat/conversations/${conv}/messages`)).json().items
      expect(history[0]).toMatchObject({ id: m.id, content: '', deleted_at: expect.any(String) })
      expect(events.map((e) => e.type)).toEqual(['message.deleted', 'message.unpinned'])
      expect((await call(b, 'GET', `/chat/conversations/${conv}/pins`)).json().items).toEqual([])
      expect((await auditOf(m.id)).map((e) => e.action)).toEqual(['message.delete'])
      expect((await auditOf(report.id)).map((e) => e.action)).toEqual(['report.resolve'])
    })
  })

  describe('suspension', () => {
    it('stops tokens, sign-in, refresh and tickets at once with account_suspended, until lifted', async () => {
      const [a, b] = await people('A', 'B')
      const conv = await group(a, [b])
      const m = await send(a, conv, 'abuse')
      const report = (await call(b, 'POST', `/chat/messages/${m.id}/report`, { reason: 'violence' })).json()
      const res = await call(op, 'POST', `/admin/reports/${report.id}/resolve`, { action: 'suspend_user' })
      expect(res.statusCode, res.body).toBe(200)

      const me = await call(a, 'GET', '/auth/me')
      expect([me.statusCode, problemType(me)]).toEqual([401, '/problems/account_suspended'])
      const ticket = await call(a, 'POST', '/chat/ws-ticket')
      expect([ticket.statusCode, problemType(ticket)]).toEqual([401, '/problems/account_suspended'])
      const login = await call(undefined, 'POST', '/auth/login', { email: a.email, password: a.password })
      expect([login.statusCode, problemType(login)]).toEqual([401, '/problems/account_suspended'])
      // A wrong password learns nothing of the suspension.
      const wrong = await call(undefined, 'POST', '/auth/login', {
        email: a.email,
        password: 'not-it-at-all',
      })
      expect([wrong.statusCode, problemType(wrong)]).toEqual([401, '/problems/unauthorized'])
      const refresh = await call(undefined, 'POST', '/auth/refresh', { refresh_token: a.refresh })
      expect([refresh.statusCode, problemType(refresh)]).toEqual([401, '/problems/account_suspended'])
      const audit = await auditOf(a.id)
      expect(audit).toEqual([
        expect.objectContaining({ action: 'user.suspend', details: { report_id: report.id } }),
      ])

      const listed = (
        await call(op, 'GET', `/admin/users?suspended=true&query=${encodeURIComponent(a.email)}`)
      ).json()
      expect(listed.items).toEqual([expect.objectContaining({ id: a.id, suspended_at: expect.any(String) })])

      const lifted = await call(op, 'DELETE', `/admin/users/${a.id}/suspension`)
      expect(lifted.statusCode).toBe(200)
      expect(lifted.json().suspended_at).toBeNull()
      expect(
        (await call(undefined, 'POST', '/auth/login', { email: a.email, password: a.password })).statusCode,
      ).toBe(200)
      // Sessions ended by the suspension stay ended.
      const old = await call(undefined, 'POST', '/auth/refresh', { refresh_token: a.refresh })
      expect([old.statusCode, problemType(old)]).toEqual([401, '/problems/unauthorized'])
      expect((await auditOf(a.id)).map((e) => e.action)).toEqual(['user.unsuspend', 'user.suspend'])
    })

    it('suspend and unsuspend directly; operators cannot suspend themselves; unknown is 404', async () => {
      const [u] = await people('U')
      const s = await call(op, 'PUT', `/admin/users/${u.id}/suspension`)
      expect(s.statusCode).toBe(200)
      expect(s.json()).toMatchObject({ id: u.id, suspended_at: expect.any(String) })
      expect((await call(op, 'PUT', `/admin/users/${op.id}/suspension`)).statusCode).toBe(422)
      expect((await call(op, 'PUT', `/admin/users/${crypto.randomUUID()}/suspension`)).statusCode).toBe(404)
      const active = (
        await call(op, 'GET', `/admin/users?suspended=false&query=${encodeURIComponent(u.email)}`)
      ).json()
      expect(active.items).toEqual([])
    })
  })

  describe('admin message delete', () => {
    it('deletes a message of a conversation the operator is not in, idempotently', async () => {
      const [a, b] = await people('A', 'B')
      const conv = await group(a, [b])
      const m = await send(b, conv, 'findable needle')
      const events = await record(conv)
      const res = await call(op, 'DELETE', `/admin/messages/${m.id}`)
      expect(res.statusCode, res.body).toBe(200)
      expect(res.json()).toMatchObject({ id: m.id, content: '', deleted_at: expect.any(String) })
      expect((await call(op, 'DELETE', `/admin/messages/${m.id}`)).statusCode).toBe(200)
      expect(events.map((e) => e.type)).toEqual(['message.deleted'])
      expect((await call(a, 'GET', '/chat/search?q=needle')).json().items).toEqual([])
      expect((await auditOf(m.id)).map((e) => e.action)).toEqual(['message.delete'])
      expect((await call(op, 'DELETE', `/admin/messages/${crypto.randomUUID()}`)).statusCode).toBe(404)
      // The operator is still no member: the members' routes say 404.
      expect((await call(op, 'GET', `/chat/conversations/${conv}`)).statusCode).toBe(404)
    })
  })

  describe('group bans', () => {
    it('removes the member, refuses re-adding until unbanned, and is audited', async () => {
      const [owner, admin, b, c] = await people('O', 'Adm', 'B', 'C')
      const conv = await group(owner, [admin, b, c])
      await call(owner, 'PATCH', `/chat/conversations/${conv}/members/${admin.id}`, { role: 'admin' })
      const events = await record(conv)
      expect((await call(admin, 'POST', `/chat/conversations/${conv}/bans/${b.id}`)).statusCode).toBe(204)
      expect(events).toEqual([expect.objectContaining({ type: 'member.removed', user_id: b.id })])
      expect((await call(b, 'GET', `/chat/conversations/${conv}`)).statusCode).toBe(404)
      // Banning again changes nothing.
      expect((await call(owner, 'POST', `/chat/conversations/${conv}/bans/${b.id}`)).statusCode).toBe(204)
      for (const who of [owner, admin]) {
        const add = await call(who, 'POST', `/chat/conversations/${conv}/members`, { user_id: b.id })
        expect([add.statusCode, problemType(add)]).toEqual([409, '/problems/banned'])
      }
      const list = (await call(admin, 'GET', `/chat/conversations/${conv}/bans`)).json()
      expect(list.items).toEqual([expect.objectContaining({ user_id: b.id, banned_by: admin.id })])
      expect((await call(c, 'GET', `/chat/conversations/${conv}/bans`)).statusCode).toBe(403)
      expect((await call(c, 'POST', `/chat/conversations/${conv}/bans/${admin.id}`)).statusCode).toBe(403)
      expect((await call(admin, 'POST', `/chat/conversations/${conv}/bans/${owner.id}`)).statusCode).toBe(403)
      expect((await call(b, 'DELETE', `/chat/conversations/${conv}/bans/${b.id}`)).statusCode).toBe(404)

      expect((await call(admin, 'DELETE', `/chat/conversations/${conv}/bans/${b.id}`)).statusCode).toBe(204)
      expect((await call(admin, 'DELETE', `/chat/conversations/${conv}/bans/${b.id}`)).statusCode).toBe(404)
      expect((await call(b, 'GET', `/chat/conversations/${conv}`)).statusCode).toBe(404)
      expect(
        (await call(admin, 'POST', `/chat/conversations/${conv}/members`, { user_id: b.id })).statusCode,
      ).toBe(201)
      const audit = await auditOf(b.id)
      expect(audit.map((e) => [e.action, e.actor_id])).toEqual([
        ['member.unban', admin.id],
        ['member.ban', admin.id],
      ])
      expect(audit[1]?.details).toEqual({ conversation_id: conv, removed: true })
    })

    it('bans someone not yet a member; a direct conversation has no bans', async () => {
      const [owner, x, y] = await people('O', 'X', 'Y')
      const conv = await group(owner, [])
      expect((await call(owner, 'POST', `/chat/conversations/${conv}/bans/${x.id}`)).statusCode).toBe(204)
      const add = await call(owner, 'POST', `/chat/conversations/${conv}/members`, { user_id: x.id })
      expect(add.statusCode).toBe(409)
      expect((await call(owner, 'POST', `/chat/conversations/${conv}/bans/${owner.id}`)).statusCode).toBe(422)
      const dm = (await call(x, 'POST', '/chat/conversations', { recipient_id: y.id })).json().id
      expect((await call(x, 'POST', `/chat/conversations/${dm}/bans/${y.id}`)).statusCode).toBe(422)
      expect((await call(owner, 'POST', `/chat/conversations/${dm}/bans/${y.id}`)).statusCode).toBe(404)
    })
  })

  describe('audit log', () => {
    it('refuses UPDATE, DELETE and TRUNCATE in the database itself', async () => {
      const [u] = await people('U')
      await call(op, 'PUT', `/admin/users/${u.id}/suspension`)
      const { db } = t.database
      const count = async () => (await db.select().from(auditLog).where(eq(auditLog.targetId, u.id))).length
      expect(await count()).toBe(1)
      await expect(
        db.update(auditLog).set({ action: 'forged' }).where(eq(auditLog.targetId, u.id)),
      ).rejects.toThrow()
      await expect(db.delete(auditLog).where(eq(auditLog.targetId, u.id))).rejects.toThrow()
      await expect(db.execute(sql`truncate audit_log`)).rejects.toThrow()
      expect(await count()).toBe(1)
      expect((await auditOf(u.id))[0]?.action).toBe('user.suspend')
    })

    it('filters by action and actor, newest first, in keyset pages', async () => {
      const [u, v] = await people('U', 'V')
      await call(op, 'PUT', `/admin/users/${u.id}/suspension`)
      await call(op, 'PUT', `/admin/users/${v.id}/suspension`)
      await call(op, 'DELETE', `/admin/users/${v.id}/suspension`)
      const page = (
        await call(op, 'GET', `/admin/audit-log?action=user.suspend&actor_id=${op.id}&limit=1`)
      ).json()
      expect(page.items).toEqual([expect.objectContaining({ action: 'user.suspend', target_id: v.id })])
      const next = (
        await call(
          op,
          'GET',
          `/admin/audit-log?action=user.suspend&actor_id=${op.id}&limit=1&cursor=${page.next_cursor}`,
        )
      ).json()
      expect(next.items).toEqual([expect.objectContaining({ action: 'user.suspend', target_id: u.id })])
    })
  })
})

describe('report rate limit', () => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ env: { RATE_LIMITS: 'on', REPORT_MAX_PER_USER: '2', REPORT_WINDOW_SEC: '600' } })
  })
  afterAll(async () => t?.close())

  it('refuses the reports of a user past REPORT_MAX_PER_USER with 429 and Retry-After', async () => {
    const [a, b] = [await registerUser(t.app, 'A'), await registerUser(t.app, 'B')]
    const conv = (
      await t.app.inject({
        method: 'POST',
        url: '/api/v1/chat/groups',
        headers: a.auth,
        payload: { title: 'g', member_ids: [b.id] },
      })
    ).json().id
    const statuses: number[] = []
    for (let i = 0; i < 3; i++) {
      const m = await t.app.inject({
        method: 'POST',
        url: `/api/v1/chat/conversations/${conv}/messages`,
        headers: a.auth,
        payload: { content: `m${i}` },
      })
      const r = await t.app.inject({
        method: 'POST',
        url: `/api/v1/chat/messages/${m.json().id}/report`,
        headers: b.auth,
        payload: { reason: 'spam' },
      })
      statuses.push(r.statusCode)
      if (r.statusCode === 429) expect(Number(r.headers['retry-after'])).toBeGreaterThan(0)
    }
    expect(statuses).toEqual([201, 201, 429])
  })
})
