import type { ChatClient, Message, OutboxEntry, Timeline } from '@chat-api/client'
import { h, replaceChildren } from './dom.js'
import { conversationTitle, nameOf, peerOf } from './format.js'
import { type Row, type RowActions, storedRow, unsentRow } from './message-item.js'

/** Messages per history page (keyset, `before_seq`): the list loads another as its top comes into view. */
export const PAGE_SIZE = 20

/**
 * The open conversation: header, the message list (the SDK's timeline: stored messages in seq
 * order, each once, then the sends still in the outbox), typing line and composer.
 */
export class MessagePane {
  readonly element: HTMLElement
  private readonly title = h('h2', { id: 'pane-title', class: 'pane-title' })
  private readonly subtitle = h('p', { class: 'pane-subtitle' })
  private readonly addPeople = h('button', { type: 'button', class: 'small', hidden: true }, 'Add people')
  private readonly scroller = h('div', {
    class: 'messages',
    role: 'log',
    'aria-labelledby': 'pane-title',
    tabindex: 0,
  })
  private readonly edge = h('div', { class: 'history-edge' })
  private readonly list = h('ol', { class: 'message-list' })
  private readonly typingLine = h('p', { class: 'typing-line', 'aria-live': 'polite' })
  private readonly editBanner = h('div', { class: 'edit-banner', hidden: true })
  private readonly input = h('textarea', {
    id: 'composer',
    rows: 1,
    placeholder: 'Message',
    maxlength: 4000,
    autocomplete: 'off',
  })
  private readonly composer: HTMLFormElement
  private readonly nodes = new Map<string, { sig: string; el: HTMLElement }>()
  private readonly observer: IntersectionObserver
  private timeline: Timeline | undefined
  private offTimeline: (() => void) | undefined
  private loading = false
  private editing: Message | undefined
  private readonly actions: RowActions

  constructor(
    private readonly chat: ChatClient,
    opts: { back: () => void; addPeople: (conversationId: string) => void },
  ) {
    this.actions = {
      edit: (m) => this.startEdit(m),
      remove: (m) => {
        if (window.confirm('Delete this message for everyone?')) chat.delete(m)
      },
      retry: (e) => chat.retry(e.id),
      discard: (e) => {
        chat.discard(e.id)
        this.render()
      },
    }
    this.composer = h(
      'form',
      { class: 'composer' },
      h('label', { for: 'composer', class: 'visually-hidden' }, 'Message'),
      this.input,
      h('button', { type: 'submit', class: 'primary' }, 'Send'),
    )
    this.composer.addEventListener('submit', (ev) => {
      ev.preventDefault()
      this.submit()
    })
    this.input.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' && !ev.shiftKey && !ev.isComposing) {
        ev.preventDefault()
        this.submit()
      } else if (ev.key === 'Escape' && this.editing) this.endEdit()
    })
    this.input.addEventListener('input', () => {
      const id = this.timeline?.conversationId
      if (id && !this.editing) chat.typing(id, this.input.value.trim().length > 0)
    })
    this.addPeople.addEventListener('click', () => {
      if (this.timeline) opts.addPeople(this.timeline.conversationId)
    })
    this.scroller.addEventListener('scroll', () => this.markRead(), { passive: true })
    this.scroller.append(this.edge, this.list)
    this.element = h(
      'section',
      { class: 'pane', 'aria-labelledby': 'pane-title' },
      h(
        'header',
        { class: 'pane-header' },
        h(
          'button',
          {
            type: 'button',
            class: 'back',
            'aria-label': 'Back to conversations',
            onclick: () => opts.back(),
          },
          '‹',
        ),
        h('div', { class: 'pane-heading' }, this.title, this.subtitle),
        this.addPeople,
      ),
      this.scroller,
      this.typingLine,
      this.editBanner,
      this.composer,
    )
    this.observer = new IntersectionObserver(
      (entries) => {
        if (entries.some((e) => e.isIntersecting)) void this.loadOlder()
      },
      { root: this.scroller, rootMargin: '300px 0px 0px 0px' },
    )
    this.observer.observe(this.edge)
  }

  get conversationId(): string | undefined {
    return this.timeline?.conversationId
  }

  /** Shows a conversation (its newest page first; older pages as the list is scrolled up). */
  open(conversationId: string): void {
    if (this.timeline?.conversationId === conversationId) return
    this.closeTimeline()
    const t = this.chat.timeline(conversationId)
    this.timeline = t
    this.offTimeline = t.on('change', () => this.render())
    this.input.value = ''
    this.refresh()
    this.render()
    void this.loadOlder()
  }

  close(): void {
    this.closeTimeline()
    this.refresh()
  }

  dispose(): void {
    this.closeTimeline()
    this.observer.disconnect()
  }

  focusComposer(): void {
    this.input.focus()
  }

  /** Header, typing line and receipts follow the conversation list, presence and typing. */
  refresh(): void {
    const id = this.timeline?.conversationId
    const me = this.chat.user?.id
    const c = id ? this.chat.conversations.get(id) : undefined
    this.element.hidden = id === undefined
    if (!id) return
    this.title.textContent = c ? conversationTitle(c, me) : 'Conversation'
    const peer = c ? peerOf(c, me) : undefined
    this.subtitle.textContent = peer
      ? this.chat.presence(peer) === 'online'
        ? 'online'
        : 'offline'
      : c
        ? c.members.map((m) => (m.user_id === me ? 'You' : m.full_name)).join(', ')
        : ''
    this.addPeople.hidden = c?.kind !== 'group'
    const typists = this.chat.typingIn(id).filter((u) => u !== me)
    this.typingLine.textContent = typists.length
      ? `${typists.map((u) => nameOf(c, u)).join(', ')} ${typists.length > 1 ? 'are' : 'is'} typing…`
      : ''
    this.render()
  }

  /** The socket is open again: a first page that could not load is read now. */
  reconnected(): void {
    const t = this.timeline
    if (t && t.messages.length === 0 && t.hasOlder) void this.loadOlder()
    this.markRead()
  }

  private closeTimeline(): void {
    this.endEdit()
    this.offTimeline?.()
    this.timeline?.dispose()
    this.timeline = undefined
    this.nodes.clear()
    this.list.replaceChildren()
  }

  private submit(): void {
    const id = this.timeline?.conversationId
    const text = this.input.value.trim()
    if (!id || !text) return
    if (this.editing) {
      if (text !== this.editing.content) this.chat.edit(this.editing, text)
      this.endEdit()
      return
    }
    this.chat.send(id, text)
    this.input.value = ''
    this.scrollToBottom()
  }

  private startEdit(m: Message): void {
    this.editing = m
    replaceChildren(
      this.editBanner,
      h('span', {}, 'Editing message'),
      h('button', { type: 'button', class: 'small', onclick: () => this.endEdit() }, 'Cancel'),
    )
    this.editBanner.hidden = false
    this.input.value = m.content
    this.input.focus()
  }

  private endEdit(): void {
    if (!this.editing) return
    this.editing = undefined
    this.editBanner.hidden = true
    this.input.value = ''
  }

  private async loadOlder(): Promise<void> {
    const t = this.timeline
    if (!t || this.loading || !t.hasOlder) return
    if (!navigator.onLine) {
      this.showEdge('Earlier messages load when you are back online.')
      return
    }
    this.loading = true
    this.showEdge('Loading earlier messages…')
    try {
      await t.loadOlder(PAGE_SIZE)
    } catch {
      if (t !== this.timeline) return
      this.loading = false
      this.showEdge(
        'Could not load earlier messages.',
        h('button', { type: 'button', class: 'small', onclick: () => void this.loadOlder() }, 'Retry'),
      )
      return
    }
    this.loading = false
    if (t !== this.timeline) return
    this.render()
    this.markRead()
    // Still at the top (a short page, or a tall screen): the observer will not fire again by itself.
    if (t.hasOlder && this.scroller.scrollTop < 300) void this.loadOlder()
  }

  private showEdge(text: string, ...extra: HTMLElement[]): void {
    replaceChildren(this.edge, h('span', {}, text), ...extra)
  }

  /** Brings the list in line with the timeline, reusing unchanged rows, and keeps the reader's place. */
  private render(): void {
    const t = this.timeline
    if (!t) return
    const s = this.scroller
    const atBottom = s.scrollHeight - s.scrollTop - s.clientHeight < 48
    const fromBottom = s.scrollHeight - s.scrollTop
    const prepending = this.loading
    this.reconcile(this.rows(t))
    if (!this.loading && !t.hasOlder) this.showEdge('This is the start of the conversation.')
    else if (!this.loading && t.messages.length > 0) this.showEdge('')
    if (prepending && !atBottom) s.scrollTop = s.scrollHeight - fromBottom
    else if (atBottom || prepending) this.scrollToBottom()
    this.markRead()
  }

  private rows(t: Timeline): Row[] {
    const me = this.chat.user?.id
    const c = this.chat.conversations.get(t.conversationId)
    const ops = new Map<string, OutboxEntry>()
    for (const e of this.chat.pending(t.conversationId)) {
      if ((e.kind === 'edit' || e.kind === 'delete') && e.status === 'pending' && e.messageId)
        ops.set(e.messageId, e)
    }
    const stored = new Set(t.messages.map((m) => m.client_msg_id))
    return [
      ...t.messages.map((m) => storedRow(m, { c, me, pendingOp: ops.get(m.id) }, this.actions)),
      ...t.unsent.filter((e) => !stored.has(e.id)).map((e) => unsentRow(e, this.actions)),
    ]
  }

  private reconcile(rows: Row[]): void {
    const seen = new Set<string>()
    let previous: Element | null = null
    for (const row of rows) {
      seen.add(row.key)
      let node = this.nodes.get(row.key)
      if (!node || node.sig !== row.sig) {
        const el = row.build()
        el.dataset.key = row.key
        if (node) node.el.replaceWith(el)
        node = { sig: row.sig, el }
        this.nodes.set(row.key, node)
      }
      const expected: Element | null = previous ? previous.nextElementSibling : this.list.firstElementChild
      if (expected !== node.el) this.list.insertBefore(node.el, expected)
      previous = node.el
    }
    for (const [key, node] of this.nodes) {
      if (seen.has(key)) continue
      node.el.remove()
      this.nodes.delete(key)
    }
  }

  private scrollToBottom(): void {
    this.scroller.scrollTop = this.scroller.scrollHeight
  }

  /** Read up to the newest message once it can be seen: the page is visible and scrolled to the end. */
  markRead(): void {
    const id = this.timeline?.conversationId
    if (!id || document.visibilityState !== 'visible' || this.loading) return
    const s = this.scroller
    if (s.scrollHeight - s.scrollTop - s.clientHeight > 48) return
    if (this.chat.unreadCount(id) > 0 || this.timeline?.messages.length) this.chat.markRead(id)
  }
}
