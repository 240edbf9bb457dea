import type { PushConfig } from '../config/push-config.js'
import type { MessageView } from '../protocol/message.js'
import type { Db } from '../store/db.js'
import * as store from '../store/push-subscriptions.js'
import type { DeliveryChannel, DeliveryResult, OutboxEvent } from './outbox-channel.js'
import type { Presence } from './ports.js'
import { type PushRequest, type SenderOptions, sendPush } from './push-sender.js'
import type { PushSubscriptionService } from './push-subscriptions.js'

/**
 * The `push` delivery channel of the outbox (services/outbox-channel.ts): Web Push notifications
 * of new messages to members who are offline everywhere. docs/notifications.md ("Web Push") has
 * the rules; in short:
 *
 * - targets: for `message.created` only, every subscription of each member who was one when the
 *   message was committed and still is, except the sender, who has no socket on any instance
 *   (Presence), does not block the sender, and has not muted the conversation (a personal
 *   mention notifies anyway; `@all` does not);
 * - deliver: checks again that the owner is still a member (a removal between commit and push
 *   sends nothing) and still offline, then coalesces per (subscription, conversation): the first
 *   message after a quiet window is pushed at once, later ones within PUSH_COALESCE_WINDOW_MS are
 *   folded into one push sent at the end of the window by the delivery of the newest of them
 *   ("N new messages"). An older delivery that a newer one will cover ends at once; the newest is
 *   retried by the outbox until it is sent, so the last push of a burst always goes out.
 */

export interface PushChannelDeps {
  db: Db
  presence: Pick<Presence, 'onlineAmong'>
  subscriptions: Pick<PushSubscriptionService, 'vapidKeys'>
  config: PushConfig
  /** Time of coalescing windows and mutes (Date.now by default); tests move it instead of waiting. */
  clock?: () => number
  /** CA certificates (PEM, PUSH_CA_FILE) trusted besides the system ones: a private or test push service. */
  ca?: string
  /** Where skipped or unreadable events are reported. */
  log?: { warn(obj: object, msg: string): void }
}

/** Longest preview, in characters (the payload stays far below the ~4 KB push services accept). */
export const PREVIEW_MAX_CHARS = 140

/** What the service worker receives (JSON, decrypted by the browser). */
export interface PushPayload {
  type: 'message.created'
  conversation_id: string
  conversation_kind: 'direct' | 'group'
  conversation_title: string | null
  /** The newest message announced: open the conversation here. */
  seq: number
  message_id: string
  sender_id: string | null
  sender_name: string | null
  /** The start of the newest message (PUSH_PREVIEW=full); null with PUSH_PREVIEW=none or when it was deleted. */
  preview: string | null
  /** New messages (from others) this push announces, the newest included: more than 1 after a burst. */
  count: number
  /** The newest message mentions the recipient (personally or with @all). */
  mentioned: boolean
}

type Announced = Pick<
  MessageView,
  'id' | 'conversation_id' | 'seq' | 'sender_id' | 'mentions' | 'mentions_all'
>

/** The message a `message.created` event carries (`data.message`), or undefined for anything else. */
export function announcedMessage(event: OutboxEvent): (Announced & Partial<MessageView>) | undefined {
  if (event.type !== 'message.created') return undefined
  const m = (event.data as { message?: Partial<MessageView> } | null)?.message
  if (
    !m ||
    typeof m.id !== 'string' ||
    typeof m.conversation_id !== 'string' ||
    typeof m.seq !== 'number' ||
    !Array.isArray(m.mentions)
  ) {
    return undefined
  }
  return { ...m, sender_id: m.sender_id ?? null, mentions_all: m.mentions_all === true } as Announced &
    Partial<MessageView>
}

/** Builds the `push` channel; the lead registers it with the outbox worker beside the webhook channel. */
export function createPushChannel(deps: PushChannelDeps): DeliveryChannel {
  const { db, presence, config } = deps
  const clock = deps.clock ?? Date.now

  async function targets(event: OutboxEvent): Promise<string[]> {
    const m = announcedMessage(event)
    if (!m) {
      if (event.type === 'message.created')
        deps.log?.warn({ event: event.id }, 'push: unreadable message event')
      return []
    }
    const at = new Date(event.occurredAt)
    const rows = await store.pushTargets(db, m.conversation_id, m.seq, m.sender_id, new Date(clock()))
    const wanted = rows.filter((r) => !mutedAt(r.mutedUntil, at) || m.mentions.includes(r.userId))
    if (wanted.length === 0) return []
    const online = await presence.onlineAmong([...new Set(wanted.map((r) => r.userId))])
    return wanted.filter((r) => !online.has(r.userId)).map((r) => r.subscriptionId)
  }

  async function deliver(event: OutboxEvent, target: string, _attempt: number): Promise<DeliveryResult> {
    const m = announcedMessage(event)
    if (!m) return { kind: 'gone', error: 'not a message.created event' }
    const sub = await store.findSubscription(db, target)
    if (!sub) return { kind: 'gone', error: 'subscription deleted' }
    // Removed since the commit (or since targets were chosen): they may not hear of it.
    if (!(await store.memberSince(db, m.conversation_id, sub.userId, m.seq))) return { kind: 'delivered' }
    // Connected meanwhile: the socket delivers it.
    if ((await presence.onlineAmong([sub.userId])).has(sub.userId)) return { kind: 'delivered' }
    const key = { subscriptionId: sub.id, conversationId: m.conversation_id }
    const decision = await store.claimPush(db, key, m.seq, new Date(clock()), config.coalesceWindowMs)
    if (decision.kind === 'covered' || decision.kind === 'superseded') return { kind: 'delivered' }
    if (decision.kind === 'wait') {
      return { kind: 'retry', error: 'coalescing: sent at the end of the window', retryAfterMs: decision.ms }
    }
    const count = await store.countNewMessages(db, m.conversation_id, decision.sinceSeq, m.seq, sub.userId)
    if (count === 0) {
      // Everything it would announce was deleted meanwhile.
      await store.confirmPush(db, key, m.seq)
      return { kind: 'delivered' }
    }
    const payload = await buildPayload(m, sub.userId, count)
    const outcome = await sendPush(pushRequest(sub, payload), await senderOptions())
    if (outcome.kind === 'sent') {
      await store.confirmPush(db, key, m.seq)
      return { kind: 'delivered' }
    }
    if (outcome.kind === 'gone') {
      await store.deleteSubscription(db, sub.id)
      return {
        kind: 'gone',
        error: outcome.error ?? `push service answered ${outcome.status}: subscription deleted`,
      }
    }
    return outcome
  }

  async function buildPayload(m: Announced, recipient: string, count: number): Promise<PushPayload> {
    const [ctx, current] = await Promise.all([
      store.pushContext(db, m.conversation_id, m.sender_id),
      store.currentContent(db, m.conversation_id, m.id),
    ])
    return {
      type: 'message.created',
      conversation_id: m.conversation_id,
      conversation_kind: ctx.kind,
      conversation_title: ctx.title,
      seq: m.seq,
      message_id: m.id,
      sender_id: m.sender_id,
      sender_name: ctx.senderName,
      preview: config.preview === 'full' && current ? preview(current.content, current.attachmentName) : null,
      count,
      mentioned: m.mentions_all || m.mentions.includes(recipient),
    }
  }

  async function senderOptions(): Promise<SenderOptions> {
    return {
      vapid: { ...(await deps.subscriptions.vapidKeys()), subject: config.vapidSubject },
      allowPrivate: config.allowPrivate,
      timeoutMs: config.timeoutMs,
      ca: deps.ca,
    }
  }

  function pushRequest(sub: store.PushSubscriptionRow, payload: PushPayload): PushRequest {
    return {
      subscription: { endpoint: sub.endpoint, keys: { p256dh: sub.p256dh, auth: sub.auth } },
      payload: JSON.stringify(payload),
      topic: topicOf(payload.conversation_id),
      // A person waits on a direct message or a mention; a busy group can wait for the device's next wake-up.
      urgency: payload.conversation_kind === 'direct' || payload.mentioned ? 'high' : 'normal',
      ttlSec: config.ttlSec,
    }
  }

  // Whether any subscription exists, re-read at most every SUBSCRIBED_REFRESH_MS in the
  // background: with none, `message.created` is not written to the outbox for push at all, so a
  // deployment without browsers pays nothing on the send path. Unknown counts as yes.
  let subscribed: { at: number; any: boolean } | undefined
  let refreshing = false
  function wants(type: string): boolean {
    if (type !== 'message.created') return false
    if (!refreshing && (!subscribed || clock() - subscribed.at > SUBSCRIBED_REFRESH_MS)) {
      refreshing = true
      store
        .anySubscription(db)
        .then((any) => {
          subscribed = { at: clock(), any }
        })
        .catch(() => undefined)
        .finally(() => {
          refreshing = false
        })
    }
    return subscribed?.any ?? true
  }

  return { name: 'push', wants, targets, deliver }
}

/** How stale "is anyone subscribed" may be: a first subscription gets pushes within this. */
const SUBSCRIBED_REFRESH_MS = 5_000

/** Muted at `at`: `muted_until` later than it (MUTED_FOREVER included). */
const mutedAt = (mutedUntil: Date | null, at: Date) => mutedUntil !== null && mutedUntil > at

/** The Topic of a conversation's pushes: its id without dashes (32 hex characters, base64url-safe). */
export const topicOf = (conversationId: string) => conversationId.replace(/-/g, '')

/** At most PREVIEW_MAX_CHARS characters (code points, so no emoji is cut in half) of the text, or the file name. */
export function preview(content: string, attachmentName: string | null): string | null {
  const text = content.trim() || (attachmentName === null ? '' : `📎 ${attachmentName}`)
  if (text === '') return null
  const chars = [...text]
  return chars.length <= PREVIEW_MAX_CHARS ? text : `${chars.slice(0, PREVIEW_MAX_CHARS - 1).join('')}…`
}
