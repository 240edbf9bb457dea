import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Browser, BrowserContext } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startTestApp, type TestApp } from '../helpers/app.js'
import { buildWebClient, ChatPage, launchChromium, watchedPage } from '../helpers/browser.js'

/**
 * The web client in Debian's Chromium (playwright-core), served by the real server on
 * PostgreSQL: two people, one of them offline while the other writes, then the other way round,
 * and reloads. Every wait is on a DOM condition; the browsers' consoles must stay free of errors.
 */
describe('web client in Chromium', () => {
  let dir: string
  let t: TestApp
  let browser: Browser
  const contexts: BrowserContext[] = []
  const errors: string[] = []

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'chat-web-'))
    await buildWebClient(dir)
    // A low message limit lets the UI type a message the server refuses (the failed state).
    t = await startTestApp({ env: { WEB_DIR: dir, MESSAGE_MAX_CHARS: '200' } })
    await t.listen()
    browser = await launchChromium()
  }, 120_000)

  afterAll(async () => {
    for (const c of contexts) await c.close()
    await browser?.close()
    await t?.close()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  const person = (name: string) => ({
    name,
    email: `${name.split(' ')[0]?.toLowerCase()}.${Date.now()}@example.com`,
    password: 'Correct-horse-battery-9',
  })

  async function user(name: string) {
    const context = await browser.newContext({ viewport: { width: 1200, height: 800 } })
    contexts.push(context)
    const page = await watchedPage(context, errors, name)
    const chat = new ChatPage(page)
    const who = person(name)
    await chat.signUp(t.url, who)
    return { context, page, chat, who }
  }

  it('serves the app at / with its own Content-Security-Policy, and keeps /docs working', async () => {
    const index = await fetch(`${t.url}/`)
    expect(index.status).toBe(200)
    expect(index.headers.get('content-type')).toMatch(/text\/html/)
    expect(index.headers.get('content-security-policy')).toContain("connect-src 'self'")
    expect(await index.text()).toContain('<div id="app"')
    const docs = await fetch(`${t.url}/docs/json`)
    expect(docs.status).toBe(200)
    const spec = (await docs.json()) as { paths: Record<string, unknown> }
    expect(Object.keys(spec.paths).filter((p) => p === '/' || p.startsWith('/assets'))).toEqual([])
    const unknown = await fetch(`${t.url}/no-such-page`)
    expect(unknown.status).toBe(404)
    expect(unknown.headers.get('content-type')).toMatch(/application\/problem\+json/)
  })

  it('delivers every message once and in order across offline periods and reloads', async () => {
    const ann = await user('Ann Archer')
    const bob = await user('Bob Baker')

    await ann.chat.startDirect('Bob Baker')
    await bob.page.locator('.conv', { hasText: 'Ann Archer' }).waitFor()

    // Bob is away while Ann writes 20 messages.
    await bob.context.setOffline(true)
    await bob.chat.connection('offline')
    const first = Array.from({ length: 20 }, (_, i) => `hello ${String(i + 1).padStart(2, '0')}`)
    for (const text of first) await ann.chat.send(text)
    await ann.chat.waitForTexts(first)
    await ann.chat.waitForStatusCount('sent', 20)

    // Back online: the 20 are unread; a reload keeps that.
    await bob.context.setOffline(false)
    await bob.chat.connection('online')
    await bob.chat.waitForUnread('Ann Archer', 20)
    await bob.page.reload()
    await bob.chat.connection('online')
    await bob.chat.waitForUnread('Ann Archer', 20)

    // Bob reads them: all 20, each once, in order; Ann sees them read.
    await bob.chat.open('Ann Archer')
    await bob.chat.waitForTexts(first)
    await bob.chat.waitForUnread('Ann Archer', 0)
    await ann.chat.waitForStatusCount('read', 20)

    // A reload keeps the open conversation and its (now zero) unread count.
    await bob.page.reload()
    await bob.chat.connection('online')
    await bob.chat.waitForTexts(first)
    expect(bob.page.url()).toMatch(/#\/c\/[0-9a-f-]{36}$/)
    await bob.chat.waitForUnread('Ann Archer', 0)

    // Ann is offline: her 5 messages wait as pending, then go out once when she is back.
    await ann.context.setOffline(true)
    await ann.chat.connection('offline')
    const second = Array.from({ length: 5 }, (_, i) => `offline ${i + 1}`)
    for (const text of second) await ann.chat.send(text)
    await ann.chat.waitForStatusCount('pending', 5)
    await ann.context.setOffline(false)
    await ann.chat.connection('online')
    await ann.chat.waitForStatusCount('pending', 0)
    await ann.chat.waitForTexts([...first, ...second])
    await bob.chat.waitForTexts([...first, ...second])

    // The server stored each of the 25 once.
    const stored = await history(ann.who, 25)
    expect(stored).toEqual([...first, ...second])

    // A reload shows the newest page; scrolling up loads the older one by keyset (before_seq).
    const pages: string[] = []
    bob.page.on('request', (r) => {
      if (r.url().includes('/messages?')) pages.push(r.url())
    })
    await bob.page.reload()
    await bob.chat.connection('online')
    await bob.page.locator('.message-list .msg').nth(19).waitFor()
    await bob.page.locator('.messages').evaluate((el) => {
      el.scrollTop = 0
    })
    await bob.chat.waitForTexts([...first, ...second])
    expect(pages.some((u) => /before_seq=6\b/.test(u))).toBe(true)

    // Typing, an edit and a delete reach the other side.
    await bob.page.getByLabel('Message', { exact: true }).fill('thinking…')
    await ann.page.locator('.typing-line', { hasText: 'Bob Baker is typing' }).waitFor()
    const last = ann.page.locator('.message-list .msg', { hasText: 'offline 5' })
    await last.hover()
    await last.getByRole('button', { name: 'Edit message' }).click()
    await ann.page.getByLabel('Message', { exact: true }).fill('offline 5 (edited)')
    await ann.page.getByLabel('Message', { exact: true }).press('Enter')
    await bob.page
      .locator('.message-list .msg', { hasText: 'offline 5 (edited)' })
      .locator('.edited')
      .waitFor()
    const fourth = ann.page.locator('.message-list .msg', { hasText: 'offline 4' })
    ann.page.once('dialog', (d) => void d.accept())
    await fourth.hover()
    await fourth.getByRole('button', { name: 'Delete message' }).click()
    await bob.page.locator('.message-list .msg.deleted').waitFor()

    expect(errors).toEqual([])
  }, 240_000)

  it('creates a group with members, who see it at once; a refused message can be discarded', async () => {
    const cid = await user('Cid Carter')
    const dee = await user('Dee Dalton')
    await cid.chat.createGroup('Weekend trip', ['Dee Dalton'])
    await cid.chat.send('Who brings the tent?')
    await dee.chat.waitForUnread('Weekend trip', 1)
    await dee.chat.open('Weekend trip')
    await dee.chat.waitForTexts(['Who brings the tent?'])

    // A message the server refuses stays on screen as failed, with Retry and Discard.
    const tooLong = 'x'.repeat(250)
    await dee.chat.send(tooLong)
    const failed = dee.page.locator('.message-list .msg[data-status="failed"]')
    await failed.getByRole('button', { name: 'Retry' }).waitFor()
    await failed.getByRole('button', { name: 'Discard' }).click()
    await dee.chat.waitForTexts(['Who brings the tent?'])
    await dee.chat.send('I do')
    await cid.chat.waitForTexts(['Who brings the tent?', 'I do'])
    expect(errors).toEqual([])
  }, 120_000)

  /** The conversation's history as the server has it, read with the user's own login. */
  async function history(who: { email: string; password: string }, limit: number): Promise<string[]> {
    const login = await t.app.inject({
      method: 'POST',
      url: '/api/v1/auth/login',
      payload: { email: who.email, password: who.password },
    })
    const token = login.json().access_token as string
    const auth = { authorization: `Bearer ${token}` }
    const list = await t.app.inject({ url: '/api/v1/chat/conversations?limit=10', headers: auth })
    const id = list.json().items[0].id as string
    const page = await t.app.inject({
      url: `/api/v1/chat/conversations/${id}/messages?limit=${limit + 5}`,
      headers: auth,
    })
    const items = page.json().items as { seq: number; content: string }[]
    expect(items.map((m) => m.seq)).toEqual(items.map((_, i) => i + 1))
    return items.map((m) => m.content)
  }
})
