import { afterAll, afterEach, beforeAll } from 'vitest'
import { registerUser, startTestApp, type TestApp, type TestUser } from './app.js'
import { conversationSocketUrl, directChat, TestSocket, userSocketUrl } from './ws-client.js'

/**
 * One listening app per `describe` (with its own env), and sockets that are closed after each
 * test. Use `h.t` inside tests: the app exists only once `beforeAll` has run.
 */
export function useSocketApp(env: Record<string, string> = {}) {
  const open: TestSocket[] = []
  const h = {
    t: undefined as unknown as TestApp,
    track(s: TestSocket): TestSocket {
      open.push(s)
      return s
    },
    async userSocket(u: TestUser): Promise<TestSocket> {
      return h.track(await TestSocket.open(userSocketUrl(h.t.url), { token: u.token }))
    },
    async convSocket(u: TestUser, conv: string): Promise<TestSocket> {
      return h.track(await TestSocket.open(conversationSocketUrl(h.t.url, conv), { token: u.token }))
    },
    /** A conversation socket when `conv` is given, else a user socket. */
    socket(u: TestUser, conv?: string): Promise<TestSocket> {
      return conv ? h.convSocket(u, conv) : h.userSocket(u)
    },
    /** Two fresh users and their direct conversation. */
    async pair() {
      const a = await registerUser(h.t.app, 'Ann')
      const b = await registerUser(h.t.app, 'Bob')
      return { a, b, conv: await directChat(h.t.app, a, b) }
    },
    async trio() {
      return [
        await registerUser(h.t.app, 'Ann'),
        await registerUser(h.t.app, 'Bob'),
        await registerUser(h.t.app, 'Cid'),
      ] as const
    },
  }
  beforeAll(async () => {
    h.t = await startTestApp({ env })
    await h.t.listen()
  })
  afterEach(() => {
    for (const s of open.splice(0)) s.close()
  })
  afterAll(async () => h.t?.close())
  return h
}
