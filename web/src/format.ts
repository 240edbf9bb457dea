import type { Conversation } from '@chat-api/client'

/** What a conversation is called: a group's title, else the other member's name. */
export function conversationTitle(c: Conversation, me: string | undefined): string {
  if (c.kind === 'group') return c.title ?? 'Untitled group'
  const other = c.members.find((m) => m.user_id !== me)
  return other?.full_name ?? 'Just you'
}

/** The other member of a direct conversation (for the presence dot). */
export function peerOf(c: Conversation, me: string | undefined): string | undefined {
  if (c.kind !== 'direct') return undefined
  return c.members.find((m) => m.user_id !== me)?.user_id
}

export function nameOf(c: Conversation | undefined, userId: string | null): string {
  if (!userId) return 'Someone'
  return c?.members.find((m) => m.user_id === userId)?.full_name ?? 'Someone'
}

export function initials(name: string): string {
  const parts = name.trim().split(/\s+/).filter(Boolean)
  const letters = parts.length > 1 ? [parts[0], parts[parts.length - 1]] : [parts[0]]
  return letters
    .map((p) => p?.[0] ?? '')
    .join('')
    .toUpperCase()
}

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' })
const dayFormat = new Intl.DateTimeFormat(undefined, { month: 'short', day: 'numeric' })

/** A message time: hours and minutes today, the date before that. */
export function shortTime(iso: string, now = new Date()): string {
  const d = new Date(iso)
  return d.toDateString() === now.toDateString() ? timeFormat.format(d) : dayFormat.format(d)
}

export function fullTime(iso: string): string {
  return new Date(iso).toLocaleString()
}
