import { existsSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { type Browser, type BrowserContext, chromium, type Page } from 'playwright-core'
import { build } from 'vite'

/** The little of the DOM the page functions below use (this project's Node tsconfig has no DOM lib). */
interface PageElement {
  textContent: string | null
  querySelector(selector: string): PageElement | null
}
declare const document: { querySelectorAll(selector: string): Iterable<PageElement> & { length: number } }

/** Debian's Chromium (`apt-get install -y chromium`; `.ci/run` installs it). Never downloaded. */
export const CHROMIUM = '/usr/bin/chromium'
/** The machine's closed network refuses Chromium's background connections: switch them off. */
const ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-dev-shm-usage',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (.ci/run does it when missing)`)
  }
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS })
}

/** Builds the web client into `outDir` with its own Vite config (what `npm run build` does). */
export async function buildWebClient(outDir: string): Promise<void> {
  await build({
    configFile: fileURLToPath(new URL('../../web/vite.config.ts', import.meta.url)),
    build: { outDir, emptyOutDir: true, sourcemap: false },
    logLevel: 'warn',
  })
}

/** A page that records every console error and uncaught exception (the tests assert there are none). */
export async function watchedPage(context: BrowserContext, errors: string[], name: string): Promise<Page> {
  const page = await context.newPage()
  // Generous: on a loaded 2-core machine (the whole suite in parallel) a step can take many seconds.
  page.setDefaultTimeout(60_000)
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(`${name} console: ${m.text()}`)
  })
  page.on('pageerror', (err) => errors.push(`${name} page error: ${err.message}`))
  return page
}

/** The web client driven as a user would: labels, buttons, the keyboard. */
export class ChatPage {
  constructor(readonly page: Page) {}

  async signUp(url: string, who: { name: string; email: string; password: string }): Promise<void> {
    await this.page.goto(url)
    await this.page.getByRole('button', { name: 'Create an account' }).click()
    await this.page.getByLabel('Full name').fill(who.name)
    await this.page.getByLabel('Email').fill(who.email)
    await this.page.getByLabel('Password').fill(who.password)
    await this.page.getByRole('button', { name: 'Create account' }).click()
    await this.connection('online')
  }

  async signIn(url: string, email: string, password: string): Promise<void> {
    await this.page.goto(url)
    await this.page.getByLabel('Email').fill(email)
    await this.page.getByLabel('Password').fill(password)
    await this.page.getByRole('button', { name: 'Sign in' }).click()
    await this.connection('online')
  }

  /** Waits until the connection badge shows `state` (online / reconnecting / offline). */
  async connection(state: string): Promise<void> {
    try {
      await this.page.locator(`.conn[data-state="${state}"]`).waitFor()
    } catch (err) {
      const badge = await this.page
        .locator('.conn')
        .evaluate((el) => `${el.getAttribute('data-state')} (${el.getAttribute('title')})`)
        .catch(() => 'not shown')
      throw new Error(`connection badge never showed ${state}; it shows ${badge}`, { cause: err })
    }
  }

  async startDirect(name: string): Promise<void> {
    await this.page.getByRole('button', { name: 'New chat' }).click()
    await this.page.getByLabel('Search people').fill(name)
    await this.page.getByRole('button', { name, exact: true }).click()
    await this.page.locator('.pane-title', { hasText: name }).waitFor()
  }

  async createGroup(title: string, members: string[]): Promise<void> {
    await this.page.getByRole('button', { name: 'New group' }).click()
    await this.page.getByLabel('Group name').fill(title)
    for (const name of members) {
      await this.page.getByLabel('Search people').fill(name)
      await this.page.getByRole('button', { name, exact: true }).click()
    }
    await this.page.getByRole('button', { name: 'Create group' }).click()
    await this.page.locator('.pane-title', { hasText: title }).waitFor()
  }

  async open(title: string): Promise<void> {
    await this.page.locator('.conv', { hasText: title }).click()
    await this.page.locator('.pane-title', { hasText: title }).waitFor()
  }

  async send(text: string): Promise<void> {
    await this.page.getByLabel('Message', { exact: true }).fill(text)
    await this.page.getByLabel('Message', { exact: true }).press('Enter')
  }

  /** The texts of the message list, top to bottom. */
  texts(): Promise<string[]> {
    return this.page.$$eval('.message-list .msg .text', (els) => els.map((e) => e.textContent ?? ''))
  }

  /** Waits until the message list shows exactly `expected`, in this order. */
  async waitForTexts(expected: string[], timeout = 60_000): Promise<void> {
    try {
      await this.page.waitForFunction(
        (want) => {
          const got = [...document.querySelectorAll('.message-list .msg .text')].map((e) => e.textContent)
          return JSON.stringify(got) === JSON.stringify(want)
        },
        expected,
        { timeout },
      )
    } catch (err) {
      throw new Error(
        `message list is ${JSON.stringify(await this.texts())}, expected ${JSON.stringify(expected)}`,
        {
          cause: err,
        },
      )
    }
  }

  /** How many rows of the message list have this `data-status` (pending, failed, sent, read, received). */
  async waitForStatusCount(status: string, count: number): Promise<void> {
    await this.page.waitForFunction(
      ([s, n]) => document.querySelectorAll(`.message-list .msg[data-status="${s}"]`).length === n,
      [status, count] as const,
    )
  }

  /** The unread badge of a conversation row (0 when it has none). */
  unread(title: string): Promise<number> {
    return this.page
      .locator('.conv', { hasText: title })
      .evaluate((el) => Number(el.querySelector('.badge')?.textContent ?? 0))
  }

  async waitForUnread(title: string, count: number): Promise<void> {
    await this.page.waitForFunction(
      ([t, n]) => {
        const row = [...document.querySelectorAll('.conv')].find(
          (r) => r.querySelector('.conv-title')?.textContent === t,
        )
        return row !== undefined && Number(row.querySelector('.badge')?.textContent ?? 0) === n
      },
      [title, count] as const,
    )
  }
}
