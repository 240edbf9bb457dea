import { type ChatClient, ChatError } from '@chat-api/client'
import { connectionBadge } from './connection-badge.js'
import { ConversationListView } from './conversation-list.js'
import { h, replaceChildren } from './dom.js'
import { MessagePane } from './message-pane.js'
import { PeopleDialog } from './people-dialog.js'

/**
 * The signed-in screen: top bar (connection state, user, sign out), the conversation list and
 * the open conversation side by side on a wide screen, one at a time on a narrow one.
 *
 * The browser's own `offline` event closes the socket at once: Chromium keeps a WebSocket "open"
 * through a network loss (frames just stop), which the SDK's heartbeat would notice only after
 * its timeout. `online` connects again straight away instead of waiting out a backoff.
 */
export class ChatView {
  private readonly list: ConversationListView
  private readonly pane: MessagePane
  private readonly dialog: PeopleDialog
  private readonly layout: HTMLElement
  private readonly placeholder = h(
    'div',
    { class: 'placeholder' },
    h('p', {}, 'Pick a conversation, or start a new one.'),
  )
  private readonly cleanups: (() => void)[] = []

  constructor(
    root: HTMLElement,
    private readonly chat: ChatClient,
    private readonly opts: { signedOut: () => void },
  ) {
    this.list = new ConversationListView(chat, (id) => this.go(id))
    this.pane = new MessagePane(chat, {
      back: () => this.go(undefined),
      addPeople: (id) => this.dialog.show({ kind: 'add', conversationId: id }),
    })
    this.dialog = new PeopleDialog(chat, (id) => this.go(id))
    const badge = connectionBadge(chat)
    this.cleanups.push(badge.dispose)
    const me = chat.user
    this.layout = h(
      'div',
      { class: 'layout' },
      h(
        'aside',
        { class: 'sidebar', 'aria-label': 'Conversations' },
        h(
          'div',
          { class: 'sidebar-actions' },
          h(
            'button',
            { type: 'button', class: 'primary', onclick: () => this.dialog.show({ kind: 'direct' }) },
            'New chat',
          ),
          h('button', { type: 'button', onclick: () => this.dialog.show({ kind: 'group' }) }, 'New group'),
        ),
        this.list.element,
      ),
      h('main', { class: 'main' }, this.pane.element, this.placeholder),
    )
    replaceChildren(
      root,
      h(
        'header',
        { class: 'topbar' },
        h('span', { class: 'brand' }, 'Chat'),
        badge.element,
        h('span', { class: 'me', title: me?.email ?? '' }, me?.full_name ?? ''),
        h('button', { type: 'button', class: 'small', onclick: () => void this.signOut() }, 'Sign out'),
      ),
      this.layout,
      this.dialog.element,
    )
  }

  start(): void {
    const { chat } = this
    const refresh = () => {
      this.list.render()
      this.pane.refresh()
    }
    this.cleanups.push(
      chat.on('conversations', refresh),
      chat.on('presence', refresh),
      chat.on('typing', refresh),
      chat.on('read', () => this.pane.refresh()),
      chat.on('conversation', (e) => {
        // Removed from (or left) the open conversation: nothing more arrives there.
        if (e.type === 'member.removed' && e.userId === chat.user?.id && e.conversationId === idFromHash())
          this.go(undefined)
      }),
      chat.on('state', (s) => {
        if (s.state === 'open') this.pane.reconnected()
      }),
    )
    const offline = () => chat.disconnect()
    const online = () => this.connect()
    const hash = () => this.show(idFromHash())
    const visible = () => this.pane.markRead()
    window.addEventListener('offline', offline)
    window.addEventListener('online', online)
    window.addEventListener('hashchange', hash)
    document.addEventListener('visibilitychange', visible)
    this.cleanups.push(() => {
      window.removeEventListener('offline', offline)
      window.removeEventListener('online', online)
      window.removeEventListener('hashchange', hash)
      document.removeEventListener('visibilitychange', visible)
    })
    this.show(idFromHash())
    this.list.render()
    this.connect()
  }

  dispose(): void {
    for (const c of this.cleanups.splice(0)) c()
    this.pane.dispose()
    this.chat.disconnect()
  }

  private connect(): void {
    if (!navigator.onLine) return
    this.chat.connect().catch((err: unknown) => {
      // A session that ended is handled by the `session` event (back to sign-in).
      if (err instanceof ChatError && err.code === 'session_expired') return
    })
  }

  /** Opens a conversation through the URL, so a reload (and Back) returns to it. */
  private go(id: string | undefined): void {
    const target = id ? `#/c/${id}` : '#/'
    if (location.hash === target) this.show(id)
    else location.hash = target
  }

  private show(id: string | undefined): void {
    if (id) this.pane.open(id)
    else this.pane.close()
    this.placeholder.hidden = id !== undefined
    this.layout.classList.toggle('chat-open', id !== undefined)
    this.list.setSelected(id)
    if (id && window.matchMedia('(min-width: 720px)').matches) this.pane.focusComposer()
  }

  private async signOut(): Promise<void> {
    await this.chat.logout()
    location.hash = ''
    this.opts.signedOut()
  }
}

function idFromHash(): string | undefined {
  const m = /^#\/c\/([0-9a-f-]{36})$/i.exec(location.hash)
  return m?.[1]
}
