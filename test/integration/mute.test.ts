import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { groupChat, removeMember } from '../helpers/ws-client.js'

/** PUT/DELETE /chat/conversations/{id}/mute: per member, shown on the conversation and the list. */
describe.each(DRIVERS)('mute on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
  })
  afterAll(async () => t?.close())

  const mute = (user: TestUser, id: string, body: object = {}) =>
    t.app.inject({
      method: 'PUT',
      url: `/api/v1/chat/conversations/${id}/mute`,
      headers: user.auth,
      payload: body,
    })
  const unmute = (user: TestUser, id: string) =>
    t.app.inject({ method: 'DELETE', url: `/api/v1/chat/conversations/${id}/mute`, headers: user.auth })
  const conversation = async (user: TestUser, id: string) =>
    (await t.app.inject({ url: `/api/v1/chat/conversations/${id}`, headers: user.auth })).json()
  const listed = async (user: TestUser, id: string) => {
    const page = (await t.app.inject({ url: '/api/v1/chat/conversations', headers: user.auth })).json()
    return (page.items as { id: string; muted: boolean; muted_until: string | null }[]).find(
      (c) => c.id === id,
    )
  }

  it('mutes until unmuted, for the caller only, and shows it on the conversation and in the list', async () => {
    const [owner, member] = [await registerUser(t.app, 'Owner'), await registerUser(t.app, 'Member')]
    const group = await groupChat(t.app, owner, [member])
    expect(await conversation(member, group)).toMatchObject({ muted: false, muted_until: null })

    const res = await mute(member, group)
    expect(res.statusCode).toBe(200)
    expect(res.json()).toEqual({ conversation_id: group, muted: true, muted_until: null })
    expect(await conversation(member, group)).toMatchObject({ muted: true, muted_until: null })
    expect(await listed(member, group)).toMatchObject({ muted: true, muted_until: null })
    // The owner's own view is untouched.
    expect(await conversation(owner, group)).toMatchObject({ muted: false, muted_until: null })

    const off = await unmute(member, group)
    expect(off.statusCode).toBe(200)
    expect(off.json()).toEqual({ conversation_id: group, muted: false, muted_until: null })
    expect(await listed(member, group)).toMatchObject({ muted: false, muted_until: null })
    // Idempotent.
    expect((await unmute(member, group)).statusCode).toBe(200)
  })

  it('mutes until a time, replaces an earlier mute, and refuses a time in the past', async () => {
    const [owner, member] = [await registerUser(t.app, 'Owner'), await registerUser(t.app, 'Member')]
    const group = await groupChat(t.app, owner, [member])
    const until = new Date(Date.now() + 3_600_000).toISOString()
    const res = await mute(member, group, { until })
    expect(res.json()).toEqual({ conversation_id: group, muted: true, muted_until: until })
    expect(await listed(member, group)).toMatchObject({ muted: true, muted_until: until })
    expect((await mute(member, group)).json()).toMatchObject({ muted: true, muted_until: null })

    const past = await mute(member, group, { until: new Date(Date.now() - 1000).toISOString() })
    expect(past.statusCode).toBe(422)
    expect(past.json().errors).toEqual([{ path: '/body/until', message: 'must be in the future' }])
    const far = await mute(member, group, { until: '9999-06-01T00:00:00Z' })
    expect(far.statusCode).toBe(422)
    expect((await mute(member, group, { until: 'tomorrow' })).statusCode).toBe(422)
    // Refusals changed nothing.
    expect(await conversation(member, group)).toMatchObject({ muted: true, muted_until: null })
  })

  it('shows a mute that ended as not muted', async () => {
    const [owner, member] = [await registerUser(t.app, 'Owner'), await registerUser(t.app, 'Member')]
    const group = await groupChat(t.app, owner, [member])
    const soon = new Date(Date.now() + 300)
    await t.services.conversations.mute(member.id, group, soon, new Date(soon.getTime() - 1))
    expect((await conversation(member, group)).muted).toBe(true)
    // The view is computed against the clock: wait until the mute has ended.
    await new Promise((resolve) => setTimeout(resolve, Math.max(0, soon.getTime() - Date.now() + 5)))
    expect(await conversation(member, group)).toMatchObject({ muted: false, muted_until: null })
  })

  it('answers 404 to strangers and removed members, and a re-added member starts unmuted', async () => {
    const [owner, member, stranger] = [
      await registerUser(t.app, 'Owner'),
      await registerUser(t.app, 'Member'),
      await registerUser(t.app, 'Stranger'),
    ]
    const group = await groupChat(t.app, owner, [member])
    expect((await mute(stranger, group)).statusCode).toBe(404)
    expect((await unmute(stranger, group)).statusCode).toBe(404)
    expect((await mute(member, crypto.randomUUID())).statusCode).toBe(404)
    await mute(member, group)
    await removeMember(t.app, owner, group, member)
    expect((await mute(member, group)).statusCode).toBe(404)
    expect((await unmute(member, group)).statusCode).toBe(404)
    await t.app.inject({
      method: 'POST',
      url: `/api/v1/chat/conversations/${group}/members`,
      headers: owner.auth,
      payload: { user_id: member.id },
    })
    expect(await conversation(member, group)).toMatchObject({ muted: false, muted_until: null })
  })
})
