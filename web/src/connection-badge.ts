import type { ChatClient, StateChange } from '@chat-api/client'
import { h } from './dom.js'

/** What the badge shows: the SDK's socket state, told apart from the browser being offline. */
export type Shown = 'online' | 'connecting' | 'reconnecting' | 'offline'

const LABELS: Record<Shown, string> = {
  online: 'Online',
  connecting: 'Connecting…',
  reconnecting: 'Reconnecting…',
  offline: 'Offline',
}

/** The connection state, always visible (a polite live region, so screen readers hear changes). */
export function connectionBadge(chat: ChatClient): { element: HTMLElement; dispose: () => void } {
  const label = h('span', { class: 'conn-label' })
  const element = h(
    'span',
    { class: 'conn', role: 'status', 'aria-live': 'polite' },
    h('span', { class: 'conn-dot', 'aria-hidden': 'true' }),
    label,
  )
  let everOpen = false
  const show = (change?: StateChange) => {
    const state = change?.state ?? chat.state
    if (state === 'open') everOpen = true
    const shown: Shown =
      state === 'open'
        ? 'online'
        : state === 'closed' || !navigator.onLine
          ? 'offline'
          : everOpen || state === 'reconnecting'
            ? 'reconnecting'
            : 'connecting'
    element.dataset.state = shown
    label.textContent = LABELS[shown]
    element.title =
      change?.state === 'reconnecting' && change.retryInMs !== undefined
        ? `Next attempt in ${Math.ceil(change.retryInMs / 1000)} s`
        : LABELS[shown]
  }
  const off = chat.on('state', show)
  const onNetwork = () => show()
  window.addEventListener('online', onNetwork)
  window.addEventListener('offline', onNetwork)
  show()
  return {
    element,
    dispose: () => {
      off()
      window.removeEventListener('online', onNetwork)
      window.removeEventListener('offline', onNetwork)
    },
  }
}
