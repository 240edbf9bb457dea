import {
  ChatClient,
  ChatError,
  LocalStorageCursorStore,
  LocalStorageOutboxStore,
  LocalStorageTokenStore,
} from '@chat-api/client'
import { ChatView } from './chat-view.js'
import { byId, h, replaceChildren } from './dom.js'
import { showSignIn } from './sign-in.js'

/**
 * The web client's entry point. Tokens, delivery cursors and the outbox live in localStorage
 * (the SDK's adapters), so a reload keeps the session, what was delivered and what was not yet
 * sent; the open conversation is in the URL (`#/c/<id>`).
 */
const root = byId(document, '#app')
const chat = new ChatClient({
  baseUrl: location.origin,
  tokenStore: new LocalStorageTokenStore(),
  cursorStore: new LocalStorageCursorStore(),
  outboxStore: new LocalStorageOutboxStore(),
})
let view: ChatView | undefined

chat.on('session', (e) => {
  if (e.status === 'expired') signIn('Your session ended. Please sign in again.')
})

function signIn(notice?: string): void {
  view?.dispose()
  view = undefined
  showSignIn(root, chat, { notice, signedIn: enter })
}

function enter(): void {
  view?.dispose()
  view = new ChatView(root, chat, { signedOut: () => signIn() })
  view.start()
}

/** Picks up a stored session; without the network, waits for it (nothing to show yet). */
async function boot(): Promise<void> {
  if (!(await chat.auth.signedIn())) return signIn()
  if (!navigator.onLine) return waitForNetwork()
  try {
    if (await chat.auth.restore()) enter()
    else signIn()
  } catch (err) {
    if (err instanceof ChatError && err.transient) return waitForNetwork()
    signIn(err instanceof Error ? err.message : String(err))
  }
}

function waitForNetwork(): void {
  const retry = h('button', { type: 'button', class: 'primary', onclick: () => void boot() }, 'Try again')
  replaceChildren(
    root,
    h(
      'main',
      { class: 'splash' },
      h('h1', {}, 'Chat'),
      h('p', { role: 'status' }, 'Cannot reach the server. Waiting for the network…'),
      retry,
    ),
  )
  window.addEventListener('online', () => void boot(), { once: true })
}

void boot()
