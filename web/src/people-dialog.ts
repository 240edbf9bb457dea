import { type ChatClient, ChatError, type PublicUser } from '@chat-api/client'
import { h, replaceChildren } from './dom.js'

export type PeopleMode = { kind: 'direct' } | { kind: 'group' } | { kind: 'add'; conversationId: string }

/**
 * One modal dialog for finding people: start a direct conversation, create a group with
 * members, or add members to a group. The native <dialog> keeps focus inside and closes on Escape.
 */
export class PeopleDialog {
  readonly element: HTMLDialogElement
  private readonly heading = h('h2', { id: 'people-title' })
  private readonly search = h('input', {
    id: 'people-search',
    type: 'search',
    autocomplete: 'off',
    maxlength: 100,
    placeholder: 'Name, or email with @',
  })
  private readonly groupTitle = h('input', { id: 'group-title', maxlength: 200, autocomplete: 'off' })
  private readonly titleField = h(
    'div',
    { class: 'field' },
    h('label', { for: 'group-title' }, 'Group name'),
    this.groupTitle,
  )
  private readonly results = h('ul', { class: 'people-results', 'aria-label': 'People found' })
  private readonly chosenList = h('ul', { class: 'chips', 'aria-label': 'Members to add' })
  private readonly error = h('p', { class: 'form-error', role: 'alert' })
  private readonly create = h('button', { type: 'submit', class: 'primary' }, 'Create group')
  private mode: PeopleMode = { kind: 'direct' }
  private readonly chosen = new Map<string, PublicUser>()
  private searchTimer: ReturnType<typeof setTimeout> | undefined
  private query = 0

  constructor(
    private readonly chat: ChatClient,
    private readonly opened: (conversationId: string) => void,
  ) {
    const form = h(
      'form',
      { method: 'dialog', class: 'people-form' },
      this.heading,
      this.titleField,
      h('div', { class: 'field' }, h('label', { for: 'people-search' }, 'Search people'), this.search),
      this.results,
      this.chosenList,
      this.error,
      h(
        'div',
        { class: 'dialog-buttons' },
        h('button', { type: 'button', onclick: () => this.element.close() }, 'Close'),
        this.create,
      ),
    )
    form.addEventListener('submit', (ev) => {
      ev.preventDefault()
      void this.createGroup()
    })
    this.search.addEventListener('input', () => {
      clearTimeout(this.searchTimer)
      this.searchTimer = setTimeout(() => void this.find(), 200)
    })
    this.element = h('dialog', { class: 'people', 'aria-labelledby': 'people-title' }, form)
  }

  show(mode: PeopleMode): void {
    this.mode = mode
    this.chosen.clear()
    this.search.value = ''
    this.groupTitle.value = ''
    this.error.textContent = ''
    replaceChildren(this.results)
    const group = mode.kind === 'group'
    this.heading.textContent = group ? 'New group' : mode.kind === 'add' ? 'Add people' : 'New chat'
    this.titleField.hidden = !group
    this.groupTitle.required = group
    this.create.hidden = !group
    this.renderChosen()
    this.element.showModal()
    ;(group ? this.groupTitle : this.search).focus()
  }

  private async find(): Promise<void> {
    const q = this.search.value.trim()
    const n = ++this.query
    if (!q) return replaceChildren(this.results)
    try {
      const people = (await this.chat.conversations.searchUsers(q, 10)).filter(
        (p) => p.id !== this.chat.user?.id,
      )
      if (n !== this.query) return
      replaceChildren(
        this.results,
        ...(people.length
          ? people.map((p) => this.person(p))
          : [h('li', { class: 'empty' }, 'Nobody found.')]),
      )
    } catch (err) {
      if (n === this.query) this.error.textContent = message(err)
    }
  }

  private person(p: PublicUser): HTMLElement {
    const pressed = this.mode.kind === 'group' ? String(this.chosen.has(p.id)) : false
    return h(
      'li',
      {},
      h(
        'button',
        { type: 'button', class: 'person', 'aria-pressed': pressed, onclick: () => void this.pick(p) },
        p.full_name,
      ),
    )
  }

  private async pick(p: PublicUser): Promise<void> {
    this.error.textContent = ''
    const mode = this.mode
    if (mode.kind === 'group') {
      if (this.chosen.has(p.id)) this.chosen.delete(p.id)
      else this.chosen.set(p.id, p)
      this.renderChosen()
      for (const b of this.results.querySelectorAll<HTMLButtonElement>('button.person')) {
        if (b.textContent === p.full_name) b.setAttribute('aria-pressed', String(this.chosen.has(p.id)))
      }
      return
    }
    try {
      if (mode.kind === 'direct') {
        const c = await this.chat.conversations.openDirect(p.id)
        this.element.close()
        this.opened(c.id)
      } else {
        await this.chat.conversations.addMember(mode.conversationId, p.id)
        this.element.close()
      }
    } catch (err) {
      this.error.textContent = message(err)
    }
  }

  private renderChosen(): void {
    this.chosenList.hidden = this.mode.kind !== 'group' || this.chosen.size === 0
    replaceChildren(
      this.chosenList,
      ...[...this.chosen.values()].map((p) =>
        h(
          'li',
          {},
          h(
            'button',
            {
              type: 'button',
              class: 'chip',
              'aria-label': `Remove ${p.full_name}`,
              onclick: () => {
                this.chosen.delete(p.id)
                this.renderChosen()
              },
            },
            `${p.full_name} ×`,
          ),
        ),
      ),
    )
  }

  private async createGroup(): Promise<void> {
    if (this.mode.kind !== 'group') return
    const title = this.groupTitle.value.trim()
    if (!title) {
      this.error.textContent = 'Give the group a name.'
      this.groupTitle.focus()
      return
    }
    try {
      const c = await this.chat.conversations.createGroup({ title, member_ids: [...this.chosen.keys()] })
      this.element.close()
      this.opened(c.id)
    } catch (err) {
      this.error.textContent = message(err)
    }
  }
}

function message(err: unknown): string {
  if (err instanceof ChatError && (err.code === 'network' || err.code === 'timeout'))
    return 'Cannot reach the server. Try again when you are online.'
  return err instanceof Error ? err.message : String(err)
}
