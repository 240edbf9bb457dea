import type { Conversation, Message, OutboxEntry } from '@chat-api/client'
import { h } from './dom.js'
import { fullTime, nameOf, shortTime } from './format.js'

/** One row of the message list, with a signature: a row whose signature is unchanged is reused. */
export interface Row {
  key: string
  sig: string
  build(): HTMLElement
}

export interface RowActions {
  edit(m: Message): void
  remove(m: Message): void
  retry(e: OutboxEntry): void
  discard(e: OutboxEntry): void
}

/** Own messages: `read` once the other member (all others, in a group) read up to it. */
export function receipt(c: Conversation | undefined, me: string | undefined, seq: number): string {
  const others = c?.members.filter((m) => m.user_id !== me) ?? []
  const read = others.filter((m) => m.last_read_seq >= seq).length
  if (others.length === 0 || read === 0) return 'sent'
  return read === others.length ? 'read' : `read:${read}`
}

/** A stored message; `pendingOp` is an edit or delete of it still in the outbox. */
export function storedRow(
  m: Message,
  ctx: { c: Conversation | undefined; me: string | undefined; pendingOp: OutboxEntry | undefined },
  actions: RowActions,
): Row {
  const mine = m.sender_id !== null && m.sender_id === ctx.me
  const status = mine ? receipt(ctx.c, ctx.me, m.seq) : ''
  const op = ctx.pendingOp
  const showAuthor = !mine && ctx.c?.kind === 'group'
  const sig = [m.seq, m.content, m.edited_at, m.deleted_at, status, op?.kind, op?.content, showAuthor].join(
    '|',
  )
  return {
    key: mine && m.client_msg_id ? `c:${m.client_msg_id}` : `m:${m.id}`,
    sig,
    build: () => {
      const deleted = m.deleted_at !== null || op?.kind === 'delete'
      const text = op?.kind === 'edit' ? (op.content ?? '') : m.content
      const li = h(
        'li',
        {
          class: `msg${mine ? ' mine' : ''}${deleted ? ' deleted' : ''}`,
          'data-seq': m.seq,
          'data-status': mine ? statusName(status, op) : 'received',
        },
        h(
          'div',
          { class: 'bubble' },
          showAuthor ? h('span', { class: 'author' }, nameOf(ctx.c, m.sender_id)) : null,
          h('p', { class: 'text' }, deleted ? 'Message deleted' : text),
          h(
            'span',
            { class: 'meta' },
            h('time', { datetime: m.created_at, title: fullTime(m.created_at) }, shortTime(m.created_at)),
            m.edited_at && !deleted ? h('span', { class: 'edited' }, 'edited') : null,
            mine ? h('span', { class: 'status' }, statusText(status, op)) : null,
          ),
        ),
        mine && !deleted && !op
          ? h(
              'span',
              { class: 'actions' },
              h(
                'button',
                {
                  type: 'button',
                  class: 'small',
                  'aria-label': 'Edit message',
                  onclick: () => actions.edit(m),
                },
                'Edit',
              ),
              h(
                'button',
                {
                  type: 'button',
                  class: 'small',
                  'aria-label': 'Delete message',
                  onclick: () => actions.remove(m),
                },
                'Delete',
              ),
            )
          : null,
      )
      return li
    },
  }
}

/** A send not stored yet: `pending` (on its way, kept across reloads) or `failed` (with Retry). */
export function unsentRow(e: OutboxEntry, actions: RowActions): Row {
  return {
    key: `c:${e.id}`,
    sig: [e.status, e.content, e.error?.message].join('|'),
    build: () =>
      h(
        'li',
        { class: `msg mine ${e.status}`, 'data-status': e.status },
        h(
          'div',
          { class: 'bubble' },
          h('p', { class: 'text' }, e.content ?? ''),
          h(
            'span',
            { class: 'meta' },
            h('time', { datetime: e.createdAt }, shortTime(e.createdAt)),
            h('span', { class: 'status' }, e.status === 'failed' ? 'Not sent' : 'Sending…'),
          ),
          e.status === 'failed'
            ? h(
                'span',
                { class: 'failure', role: 'alert' },
                e.error?.message ?? 'The server refused this message.',
              )
            : null,
        ),
        e.status === 'failed'
          ? h(
              'span',
              { class: 'actions visible' },
              h('button', { type: 'button', class: 'small', onclick: () => actions.retry(e) }, 'Retry'),
              h('button', { type: 'button', class: 'small', onclick: () => actions.discard(e) }, 'Discard'),
            )
          : null,
      ),
  }
}

function statusName(status: string, op: OutboxEntry | undefined): string {
  if (op) return 'saving'
  return status.startsWith('read') ? 'read' : status
}

function statusText(status: string, op: OutboxEntry | undefined): string {
  if (op?.kind === 'delete') return 'Deleting…'
  if (op) return 'Saving…'
  if (status === 'read') return 'Read ✓✓'
  if (status.startsWith('read:')) return `Read by ${status.slice(5)} ✓✓`
  return 'Sent ✓'
}
