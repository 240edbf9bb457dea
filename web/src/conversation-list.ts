import type { ChatClient, Conversation } from '@chat-api/client'
import { h, replaceChildren } from './dom.js'
import { conversationTitle, initials, nameOf, peerOf, shortTime } from './format.js'

/**
 * The sidebar's list: most recent activity first (the SDK keeps the order), unread counts,
 * presence dots for direct conversations, "typing…" in place of the last message.
 */
export class ConversationListView {
  readonly element = h('ul', { class: 'conv-list', 'aria-label': 'Conversations' })
  private selected: string | undefined

  constructor(
    private readonly chat: ChatClient,
    private readonly select: (id: string) => void,
  ) {}

  setSelected(id: string | undefined): void {
    this.selected = id
    this.render()
  }

  render(): void {
    const me = this.chat.user?.id
    const items = this.chat.conversations.items
    if (items.length === 0) {
      replaceChildren(
        this.element,
        h('li', { class: 'empty' }, 'No conversations yet. Start one with “New chat”.'),
      )
      return
    }
    // Rows are rebuilt on every change: keep the keyboard focus on the row it was on.
    const focused = (document.activeElement as HTMLElement | null)?.closest<HTMLElement>('.conv')?.dataset.id
    replaceChildren(this.element, ...items.map((c) => this.row(c, me)))
    if (focused) this.element.querySelector<HTMLElement>(`.conv[data-id="${focused}"]`)?.focus()
  }

  private row(c: Conversation, me: string | undefined): HTMLElement {
    const title = conversationTitle(c, me)
    const peer = peerOf(c, me)
    const online = peer !== undefined && this.chat.presence(peer) === 'online'
    const typists = this.chat.typingIn(c.id).filter((u) => u !== me)
    const unread = c.unread_count
    const preview = typists.length
      ? `${typists.map((u) => nameOf(c, u)).join(', ')} typing…`
      : lastMessageText(c, me)
    const button = h(
      'button',
      {
        type: 'button',
        class: 'conv',
        'data-id': c.id,
        'aria-current': c.id === this.selected ? 'true' : false,
        onclick: () => this.select(c.id),
      },
      h(
        'span',
        { class: 'avatar', 'aria-hidden': 'true' },
        c.kind === 'group' ? '#' : initials(title),
        peer !== undefined ? h('span', { class: `dot ${online ? 'online' : 'offline'}` }) : null,
      ),
      h(
        'span',
        { class: 'conv-main' },
        h('span', { class: 'conv-title' }, title),
        h('span', { class: `conv-last${typists.length ? ' typing' : ''}` }, preview),
      ),
      h(
        'span',
        { class: 'conv-side' },
        h('time', { datetime: c.last_activity_at }, shortTime(c.last_activity_at)),
        unread > 0 ? h('span', { class: 'badge', 'data-unread': unread }, String(unread)) : null,
      ),
    )
    const status = [
      peer !== undefined ? (online ? 'online' : 'offline') : `${c.members.length} members`,
      unread > 0 ? `${unread} unread` : '',
    ]
    button.setAttribute('aria-label', [title, ...status].filter(Boolean).join(', '))
    return h('li', {}, button)
  }
}

function lastMessageText(c: Conversation, me: string | undefined): string {
  const m = c.last_message
  if (!m) return c.kind === 'group' ? `${c.members.length} members` : 'No messages yet'
  if (m.deleted_at) return 'Message deleted'
  const who = m.sender_id === me ? 'You: ' : c.kind === 'group' ? `${nameOf(c, m.sender_id)}: ` : ''
  return `${who}${m.content}`
}
