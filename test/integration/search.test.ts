import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import type { MessageView } from '../../src/protocol/message.js'
import { snippet } from '../../src/services/search.js'
import { DRIVERS, registerUser, startTestApp, type TestApp, type TestUser } from '../helpers/app.js'
import { uniqueWord } from '../helpers/store.js'

/**
 * GET /chat/search on PostgreSQL and PGlite (pg_trgm loaded on both): words, word prefixes and
 * substrings, newest first with keyset pages, highlighted snippets, and the visibility rules.
 */
const API = '/api/v1/chat'
type Hit = { message: MessageView; snippet: string }

describe.each(DRIVERS)('search on %s', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
  })
  afterAll(async () => t?.close())

  const call = (user: TestUser, method: 'GET' | 'POST' | 'PATCH' | 'DELETE', url: string, payload?: object) =>
    t.app.inject({ method, url: `${API}${url}`, headers: user.auth, ...(payload ? { payload } : {}) })
  const group = async (owner: TestUser, members: TestUser[]) =>
    (await call(owner, 'POST', '/groups', { title: 'G', member_ids: members.map((m) => m.id) })).json()
      .id as string
  const send = async (u: TestUser, id: string, content: string): Promise<MessageView> =>
    (await call(u, 'POST', `/conversations/${id}/messages`, { content })).json()
  const find = async (u: TestUser, query: string) => {
    const res = await call(u, 'GET', `/search?${query}`)
    expect(res.statusCode, res.body).toBe(200)
    return res.json() as { items: Hit[]; next_cursor: string | null }
  }
  const contents = (page: { items: Hit[] }) => page.items.map((h) => h.message.content)

  it('finds words, word prefixes and substrings, newest first, in keyset pages', async () => {
    const [a, b] = await Promise.all([registerUser(t.app, 'A'), registerUser(t.app, 'B')])
    const w = uniqueWord()
    const id = await group(a, [b])
    await send(a, id, `first ${w}alpha here`)
    await send(b, id, `second mentions ${w}alpha too`)
    await send(a, id, `third has x${w}beta inside`)
    await send(a, id, 'nothing to see')
    expect(contents(await find(b, `q=${w}alpha`))).toEqual([
      `second mentions ${w}alpha too`,
      `first ${w}alpha here`,
    ])
    // A prefix of a word (full text), and a part inside a word (pg_trgm).
    expect(contents(await find(b, `q=${w}`))).toHaveLength(3)
    expect(contents(await find(b, `q=${w.slice(2)}bet`))).toEqual([`third has x${w}beta inside`])
    const page = await find(b, `q=${w}&limit=2`)
    expect(page.items).toHaveLength(2)
    const rest = await find(b, `q=${w}&limit=2&cursor=${page.next_cursor}`)
    expect(contents(rest)).toEqual([`first ${w}alpha here`])
    expect(rest.next_cursor).toBeNull()
    expect(page.items[0]?.snippet).toContain('<mark>')
  })

  it('finds words of one or two characters too (no trigram: one scan over the conversations of the member)', async () => {
    const [a, b, stranger] = await Promise.all([
      registerUser(t.app, 'A'),
      registerUser(t.app, 'B'),
      registerUser(t.app, 'S'),
    ])
    const w = uniqueWord()
    const id = await group(a, [b])
    await send(a, id, `${w} xy first`)
    await send(a, id, `${w} other`)
    await send(b, id, `${w} xylophone last`)
    // `xy` (2 characters) goes through the single scan, `xylo` through the per-conversation one.
    const page = await find(b, `q=${encodeURIComponent(`${w} xy`)}&limit=1`)
    expect(contents(page)).toEqual([`${w} xylophone last`])
    const rest = await find(b, `q=${encodeURIComponent(`${w} xy`)}&cursor=${page.next_cursor}`)
    expect(contents(rest)).toEqual([`${w} xy first`])
    expect(contents(await find(b, `q=${encodeURIComponent(`${w} xylo`)}`))).toEqual([`${w} xylophone last`])
    expect((await find(stranger, `q=${encodeURIComponent(`${w} xy`)}`)).items).toEqual([])
  })

  it('re-indexes edits, drops deleted messages, narrows to one conversation', async () => {
    const a = await registerUser(t.app, 'A')
    const w = uniqueWord()
    const one = await group(a, [])
    const two = await group(a, [])
    const m = await send(a, one, `${w} in one`)
    await send(a, two, `${w} in two`)
    expect(contents(await find(a, `q=${w}&conversation_id=${two}`))).toEqual([`${w} in two`])
    await call(a, 'PATCH', `/messages/${m.id}`, { content: 'changed words' })
    expect(contents(await find(a, `q=${w}`))).toEqual([`${w} in two`])
    expect(contents(await find(a, 'q=changed'))).toContain('changed words')
    await call(a, 'DELETE', `/messages/${m.id}`)
    expect(contents(await find(a, `q=${w}&conversation_id=${one}`))).toEqual([])
  })

  it('shows strangers nothing and gives removed members nothing from that conversation', async () => {
    const [a, b, stranger] = await Promise.all(['A', 'B', 'S'].map((n) => registerUser(t.app, n)))
    if (!a || !b || !stranger) throw new Error('users')
    const w = uniqueWord()
    const id = await group(a, [b])
    await send(a, id, `${w} secret`)
    expect((await find(stranger, `q=${w}`)).items).toEqual([])
    expect((await call(stranger, 'GET', `/search?q=${w}&conversation_id=${id}`)).statusCode).toBe(404)
    expect(contents(await find(b, `q=${w}`))).toEqual([`${w} secret`])
    expect((await call(a, 'DELETE', `/conversations/${id}/members/${b.id}`)).statusCode).toBe(204)
    await send(a, id, `${w} after removal`)
    expect((await find(b, `q=${w}`)).items).toEqual([])
    expect((await call(b, 'GET', `/search?q=${w}&conversation_id=${id}`)).statusCode).toBe(404)
  })
})

describe('search snippets', () => {
  it('escapes the text and marks the query and word prefixes', () => {
    expect(snippet('say <b>Hello</b> & hello world', 'hel', ['hel'])).toBe(
      'say &lt;b&gt;<mark>Hello</mark>&lt;/b&gt; &amp; <mark>hello</mark> world',
    )
    const long = `${'x '.repeat(200)}needle${' y'.repeat(200)}`
    const s = snippet(long, 'needle', ['needle'])
    expect(s.startsWith('…')).toBe(true)
    expect(s.endsWith('…')).toBe(true)
    expect(s).toContain('<mark>needle</mark>')
  })
})
