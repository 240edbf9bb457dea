import type { ChatClient, Message } from '@chat-api/client'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DRIVERS, startTestApp, type TestApp } from '../helpers/app.js'
import { nextEvent, signUp, until } from '../helpers/sdk.js'

describe.each(DRIVERS)('SDK against the server (%s)', (driver) => {
  let t: TestApp
  const clients: ChatClient[] = []
  beforeAll(async () => {
    t = await startTestApp({ driver })
    await t.listen()
  })
  afterAll(async () => {
    for (const c of clients) c.disconnect()
    await t.close()
  })

  const user = async (name: string) => {
    const c = await signUp(t.url, name)
    clients.push(c)
    return c
  }

  it('sends through the outbox and delivers to both members once, in order', async () => {
    const [ann, bob] = [await user('Ann'), await user('Bob')]
    const dm = await ann.conversations.openDirect(bob.user?.id ?? '')
    await Promise.all([ann.connect(), bob.connect()])
    const seen: Record<string, Message[]> = { ann: [], bob: [] }
    ann.on('message', (e) => seen.ann?.push(e.message))
    bob.on('message', (e) => seen.bob?.push(e.message))
    const entries = ['one', 'two', 'three'].map((text) => ann.send(dm.id, text))
    expect(entries.map((e) => e.status)).toEqual(['pending', 'pending', 'pending'])
    const settled = await Promise.all(entries.map((e) => ann.settled(e.id)))
    expect(settled.map((e) => [e.status, e.message?.seq])).toEqual([
      ['sent', 1],
      ['sent', 2],
      ['sent', 3],
    ])
    await until(bob, () => seen.bob?.length === 3, 'bob gets three')
    await until(ann, () => seen.ann?.length === 3, 'ann gets three')
    expect(seen.bob?.map((m) => m.content)).toEqual(['one', 'two', 'three'])
    expect(seen.ann?.map((m) => m.seq)).toEqual([1, 2, 3])
    expect(ann.pending()).toEqual([])
    expect(bob.unreadCount(dm.id)).toBe(3)
    bob.markRead(dm.id)
    expect(bob.unreadCount(dm.id)).toBe(0)
    await nextEvent(ann, 'read', (r) => r.userId === bob.user?.id && r.seq === 3)
  })
})
