/**
 * `npm run screenshots`: docs/web-wide.png and docs/web-narrow.png, the web client in Debian's
 * Chromium on a server of its own (embedded PGlite in a temporary folder, nothing else needed),
 * with a few people and conversations made through the API.
 */
import { randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyInstance } from 'fastify'
import { loadConfig } from '../src/config/config.js'
import { createLogger } from '../src/observability/logger.js'
import { startRuntime } from '../src/wiring.js'
import { buildWebClient, ChatPage, launchChromium } from '../test/helpers/browser.js'

const PASSWORD = 'Correct-horse-battery-9'

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'chat-screens-'))
  const webDir = join(dir, 'web')
  await buildWebClient(webDir)
  const config = loadConfig({
    NODE_ENV: 'development',
    LOG_LEVEL: 'silent',
    DATA_DIR: join(dir, 'data'),
    WEB_DIR: webDir,
    JWT_SECRET: randomBytes(32).toString('base64url'),
    RATE_LIMITS: 'off',
  })
  const runtime = await startRuntime(config, createLogger('silent'))
  const url = (await runtime.app.listen({ port: 0, host: '127.0.0.1' })).replace('0.0.0.0', '127.0.0.1')
  const browser = await launchChromium()
  try {
    const api = new Api(runtime.app)
    const ann = await api.register('Ann Archer')
    const bob = await api.register('Bob Baker')
    const cid = await api.register('Cid Carter')
    const dee = await api.register('Dee Dalton')
    const trip = await api.group(ann, 'Weekend trip', [bob, cid, dee])
    await api.say(cid, trip, 'Who brings the tent?')
    await api.say(dee, trip, 'I can bring the stove and two chairs.')
    const annDee = await api.direct(dee, ann)
    await api.say(dee, annDee, 'Lunch on Friday?')
    const annCid = await api.direct(cid, ann)
    await api.say(cid, annCid, 'Here are the photos from last week')
    await api.say(cid, annCid, 'The one at the lake is my favourite')
    const annBob = await api.direct(ann, bob)
    const lines: [who: Who, text: string][] = [
      [bob, 'Morning! Did the new build go out?'],
      [ann, 'Yes, 20 minutes ago. The reconnect fix is in.'],
      [bob, 'Great, I was offline on the train and got every message once, in order.'],
      [ann, 'That is the idea: the SDK resumes from its cursors and fills any gap from history.'],
      [bob, 'And the messages I wrote in the tunnel went out when I was back.'],
      [ann, 'The outbox keeps them with their client_msg_id, so a retry never stores one twice.'],
    ]
    for (const [who, text] of lines) await api.say(who, annBob, text)
    await api.read(bob, annBob, lines.length)

    // Bob is online (a presence dot for Ann) and starts typing.
    const bobContext = await browser.newContext({ viewport: { width: 1000, height: 700 } })
    const bobPage = new ChatPage(await bobContext.newPage())
    await bobPage.signIn(url, bob.email, PASSWORD)
    await bobPage.open('Ann Archer')

    for (const [file, viewport] of [
      ['docs/web-wide.png', { width: 1280, height: 760 }],
      ['docs/web-narrow.png', { width: 390, height: 844 }],
    ] as const) {
      const context = await browser.newContext({ viewport, deviceScaleFactor: 1 })
      const page = new ChatPage(await context.newPage())
      await page.signIn(url, ann.email, PASSWORD)
      await page.open('Bob Baker')
      await page.page.locator('.pane-subtitle', { hasText: /^online$/ }).waitFor()
      await bobPage.page.getByLabel('Message', { exact: true }).fill('')
      await bobPage.page.getByLabel('Message', { exact: true }).pressSequentially('Sounds good')
      await page.page.locator('.typing-line', { hasText: 'is typing' }).waitFor()
      await page.page.getByLabel('Message', { exact: true }).fill('See you at the standup')
      await page.page.locator('.message-list .msg[data-status="read"]').last().waitFor()
      await page.page.screenshot({ path: file })
      console.log(`wrote ${file}`)
      await context.close()
    }
  } finally {
    await browser.close()
    await runtime.stop()
    rmSync(dir, { recursive: true, force: true })
  }
}

interface Who {
  id: string
  email: string
  token: string
}

/** Seeds people and conversations through the REST API. */
class Api {
  constructor(private readonly app: FastifyInstance) {}

  async register(fullName: string): Promise<Who> {
    const email = `${fullName.split(' ')[0]?.toLowerCase()}@example.com`
    const body = await this.call('POST', '/api/v1/auth/register', undefined, {
      email,
      password: PASSWORD,
      full_name: fullName,
    })
    return { id: body.user.id, email, token: body.access_token }
  }

  async group(owner: Who, title: string, members: Who[]): Promise<string> {
    const body = await this.call('POST', '/api/v1/chat/groups', owner, {
      title,
      member_ids: members.map((m) => m.id),
    })
    return body.id
  }

  async direct(from: Who, to: Who): Promise<string> {
    return (await this.call('POST', '/api/v1/chat/conversations', from, { recipient_id: to.id })).id
  }

  async say(who: Who, conversation: string, content: string): Promise<void> {
    await this.call('POST', `/api/v1/chat/conversations/${conversation}/messages`, who, { content })
  }

  async read(who: Who, conversation: string, seq: number): Promise<void> {
    await this.call('POST', `/api/v1/chat/conversations/${conversation}/read`, who, { seq })
  }

  // biome-ignore lint/suspicious/noExplicitAny: seeding reads a few fields of each answer
  private async call(method: 'POST', url: string, who: Who | undefined, payload: object): Promise<any> {
    const res = await this.app.inject({
      method,
      url,
      payload,
      headers: who ? { authorization: `Bearer ${who.token}` } : {},
    })
    if (res.statusCode >= 300) throw new Error(`${method} ${url}: ${res.statusCode} ${res.body}`)
    return res.json()
  }
}

await main()
