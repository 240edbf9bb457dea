import { NotFoundError } from '../errors.js'
import { CloseCode } from '../protocol/close-codes.js'
import { type ChatEvent, conversationChannel, userChannel } from '../protocol/events.js'
import type { MessageView } from '../protocol/message.js'
import type { Services } from '../services/index.js'
import { BlockedPeers } from './blocked-peers.js'
import { resendChanges } from './changes.js'
import { ConversationFeed } from './feed.js'
import type { FollowerSink } from './follower-sink.js'
import { encode, eventFrameFor, messageNewFrame } from './outbound.js'
import { type RemovalEvent, removal } from './removal.js'

export type { FollowerSink } from './follower-sink.js'

type MessageEvent = Extract<ChatEvent, { type: 'message.created' }>

// What a socket that follows nothing reads until its first conversation: never written to (see
// `addFeed`, `learnVersion`), so idle sockets share them instead of holding two empty Maps each.
const NO_FEEDS: ReadonlyMap<string, ConversationFeed> = new Map()
const NO_VERSIONS: ReadonlyMap<string, number> = new Map()

/**
 * What one socket follows: its broker subscriptions and one ordered feed per conversation. It
 * turns broker events into frames for this user only: messages go through the conversation's
 * feed (exactly once, in seq order), a removal stops the conversation, and a message stored
 * under a membership version this socket has not seen is held until membership is re-checked.
 *
 * `bound` is the conversation of a per-conversation socket; undefined for the user socket.
 */
export class Follower {
  private feeds = NO_FEEDS as Map<string, ConversationFeed>
  // Made when first needed (most sockets never need them): each empty Map or Set costs an idle
  // socket about 150 bytes (docs/performance.md, per-socket memory).
  /** Messages that arrived after the subscription but before the feed was made. */
  private early: Map<string, MessageView[]> | undefined
  /** Membership version per followed conversation, as far as this socket knows (see `pushChecked`). */
  private knownVersion = NO_VERSIONS as Map<string, number>
  /** Messages waiting for a membership re-check, by conversation. */
  private unverified: Map<string, MessageView[]> | undefined
  /** Channels subscribed to. The follower itself is the listener (`onEvent`): no closure per subscription. */
  private channels: Set<string> | undefined
  /** Presence of peers as last sent, so a repeated status is not sent twice. */
  private peers: Map<string, 'online' | 'offline'> | undefined
  /** Users who block this user: their presence and typing are not sent (see `noteBlock`). */
  private readonly hidden = new BlockedPeers()
  /** Conversations being left: delivering up to the removal, then forgotten. */
  private leaving: Set<string> | undefined
  private closed = false
  /** Subscribed to the user channel (kept out of `channels`: every open socket has it). */
  private listening = false

  constructor(
    private readonly userId: string,
    private readonly bound: string | undefined,
    private readonly services: Services,
    private readonly sink: FollowerSink,
    /** Hold message delivery until `start` (a user socket opened with `?resume=true`). */
    private awaitSync: boolean,
  ) {}

  /** Subscribes and sets each conversation's starting point. Runs before the upgrade completes. */
  async open(sinceSeq: number | undefined): Promise<void> {
    const { conversations } = this.services
    // The user channel in every case: it carries the account's own events (account.closed, removal).
    await this.subscribe(userChannel(this.userId), true)
    // Read after subscribing, so a block committed meanwhile arrives as an event and is not lost.
    const hidden = this.hidden.load(() => this.services.blocks.blockersOf(this.userId))
    if (this.bound) {
      await this.subscribe(conversationChannel(this.bound))
      const [{ seq: last, membersVersion }] = await Promise.all([conversations.position(this.bound), hidden])
      this.learnVersion(this.bound, membersVersion)
      // A cursor past the end would silently swallow the next messages: clamp it.
      const start = sinceSeq === undefined ? last : Math.min(sinceSeq, last)
      this.addFeed(this.bound, start, start < last)
      return
    }
    const [ids] = await Promise.all([conversations.memberships(this.userId), hidden])
    await Promise.all(ids.map((m) => this.subscribe(conversationChannel(m.conversationId))))
    // Read the starting points only now: anything committed after them arrives live.
    for (const m of await conversations.memberships(this.userId)) {
      // A conversation joined meanwhile (member.added) already has its feed, from its join point.
      if (!this.feeds.has(m.conversationId)) {
        this.learnVersion(m.conversationId, m.membersVersion)
        this.addFeed(m.conversationId, m.seq, false)
      }
    }
  }

  /** True when this socket follows the conversation. */
  follows(conversationId: string): boolean {
    return this.feeds.has(conversationId)
  }

  /** The conversations followed; undefined for a bound socket (its presence reaches every peer). */
  followed(): string[] | undefined {
    return this.bound ? undefined : [...this.feeds.keys()]
  }

  /** True when `userId` blocks this socket's user: their presence and typing are not sent. */
  hides(userId: string): boolean {
    return this.hidden.has(userId)
  }

  /**
   * A peer started or stopped blocking this user. From a block on, their presence and typing are
   * dropped, and a client that was shown them online is told offline (it should show nothing
   * live of them); after an unblock their next change is relayed again.
   */
  private noteBlock(blockerId: string, blocked: boolean): void {
    this.hidden.apply(blockerId, blocked)
    if (blocked && this.peers?.get(blockerId) === 'online') {
      this.peers.set(blockerId, 'offline')
      this.sink.send(encode({ type: 'presence', user_id: blockerId, status: 'offline' }))
    }
  }

  /** Records a peer's presence; true when it changed (and should be sent). */
  notePeer(userId: string, status: 'online' | 'offline'): boolean {
    this.peers ??= new Map()
    if (this.peers.get(userId) === status) return false
    this.peers.set(userId, status)
    return true
  }

  /**
   * Resumes each conversation after the client's cursor, then re-sends the messages it holds that
   * changed after its change position (`changes`, see ws/changes.ts); returns the ids this socket
   * does not follow.
   */
  async resume(cursors: Record<string, number>, changes: Record<string, number> = {}): Promise<string[]> {
    const unknown: string[] = []
    const resumes: Promise<void>[] = []
    for (const [conversationId, seq] of Object.entries(cursors)) {
      const feed = this.feeds.get(conversationId)
      if (feed) resumes.push(feed.resumeFrom(seq))
      else unknown.push(conversationId)
    }
    await Promise.all([...resumes, this.start()])
    const departed = await Promise.all(unknown.map((id) => this.resumeDeparted(id, cursors[id] ?? 0)))
    const wanted = Object.entries(changes).flatMap(([conversationId, change]) => {
      const seq = cursors[conversationId]
      const followed = this.feeds.has(conversationId) && !this.leaving?.has(conversationId)
      return followed && seq !== undefined ? [{ conversationId, seq, change }] : []
    })
    await resendChanges(this.services.messages, this.sink, this.userId, wanted)
    return unknown.filter((_, i) => !departed[i])
  }

  /** Ends the `?resume=true` hold: every feed delivers from its position. */
  async start(): Promise<void> {
    if (!this.awaitSync) return
    this.awaitSync = false
    await Promise.all([...this.feeds.values()].map((f) => f.start()))
  }

  /**
   * After a broker outage: re-reads every followed conversation from the store, and (user socket)
   * the memberships, since the member.added and member.removed events of the outage may be lost:
   * a conversation joined meanwhile is followed from its join point, one left is finished at its
   * removal.
   */
  async catchUp(): Promise<void> {
    for (const feed of this.feeds.values()) void feed.fill()
    if (this.bound || this.closed) return
    const now = await this.services.conversations.memberships(this.userId)
    const current = new Set(now.map((m) => m.conversationId))
    for (const m of now) {
      if (this.feeds.has(m.conversationId)) continue
      const added: ChatEvent = {
        type: 'member.added',
        conversation_id: m.conversationId,
        user_id: this.userId,
        role: m.role,
        seq: m.joinedSeq,
      }
      void this.join(m.conversationId, m.joinedSeq, added)
    }
    for (const conversationId of [...this.feeds.keys()]) {
      if (current.has(conversationId) || this.leaving?.has(conversationId)) continue
      const departure = await this.services.conversations.departure(this.userId, conversationId)
      if (departure) this.leave(conversationId, removal(conversationId, this.userId, departure))
    }
  }

  /** Releases subscriptions and feeds. Safe to call twice. */
  dispose(): void {
    if (this.closed) return
    this.closed = true
    for (const feed of this.feeds.values()) feed.close()
    const { broker } = this.services
    if (this.listening) broker.unsubscribe(userChannel(this.userId), this)
    for (const channel of this.channels ?? []) broker.unsubscribe(channel, this)
    this.channels = undefined
  }

  private async subscribe(channel: string, user = false): Promise<void> {
    if (this.channels?.has(channel) || this.closed) return
    if (user) this.listening = true
    else {
      this.channels ??= new Set()
      this.channels.add(channel)
    }
    await this.services.broker.subscribe(channel, this)
    // Disposed meanwhile: it removed the listener already, or did so before the broker added it.
    if (this.closed) this.services.broker.unsubscribe(channel, this)
  }

  private unsubscribeFrom(channel: string): void {
    if (this.channels?.delete(channel)) this.services.broker.unsubscribe(channel, this)
  }

  private addFeed(conversationId: string, start: number, fill: boolean): ConversationFeed {
    const { messages } = this.services
    const feed = new ConversationFeed(
      start,
      { after: (seq, limit) => messages.after(conversationId, seq, limit, this.userId) },
      {
        deliver: (m, replay) =>
          replay ? this.sink.sendPaced(messageNewFrame(m)) : this.sink.send(messageNewFrame(m)),
        onError: (err) => this.sink.reportFailure(err),
      },
      this.awaitSync,
    )
    if (this.feeds === NO_FEEDS) this.feeds = new Map()
    this.feeds.set(conversationId, feed)
    for (const m of this.early?.get(conversationId) ?? []) feed.push(m)
    this.early?.delete(conversationId)
    if (fill) void feed.fill()
    return feed
  }

  /** A broker event on one of this socket's channels. */
  onEvent(event: ChatEvent, channel: string): void {
    if (this.closed) return
    if (event.type === 'account.closed') {
      if (event.user_id === this.userId) this.sink.close(CloseCode.Forbidden, 'account closed')
      return
    }
    if (event.type === 'block.changed') {
      if (event.blocked_id === this.userId) this.noteBlock(event.blocker_id, event.blocked)
      return
    }
    const feed = this.feeds.get(event.conversation_id)
    switch (event.type) {
      case 'message.created':
        if (feed) this.pushChecked(feed, event)
        else if (this.channels?.has(conversationChannel(event.conversation_id)))
          this.stashEarly(event.message)
        return
      case 'message.updated':
      case 'message.deleted':
        if (feed?.amend(event.message)) this.sendEvent(event)
        return
      case 'message.thread':
      case 'message.reactions':
      case 'message.pinned':
      case 'message.unpinned':
        // After the message itself, and only if this user gets it (see docs/architecture.md).
        feed?.whenDelivered(event.seq, () => this.sendEvent(event))
        return
      case 'messages.expired':
        // After the newest of them (so after all of them), and never past a removal.
        feed?.whenDelivered(Math.max(...event.seqs), () => this.sendEvent(event))
        return
      case 'typing':
        if (feed && event.user_id !== this.userId && !this.hidden.has(event.user_id)) this.sendEvent(event)
        return
      case 'presence':
        if (
          event.user_id !== this.userId &&
          !this.hidden.has(event.user_id) &&
          this.notePeer(event.user_id, event.status)
        )
          this.sendEvent(event)
        return
      case 'conversation.created':
        void this.join(event.conversation_id, 0, event)
        return
      case 'member.added':
        if (event.user_id === this.userId && !this.bound)
          void this.join(event.conversation_id, event.seq, event)
        else if (feed) this.sendEvent(event)
        return
      case 'member.removed':
        if (event.user_id === this.userId) this.leave(event.conversation_id, event)
        else if (feed && channel === conversationChannel(event.conversation_id)) {
          this.learnVersion(event.conversation_id, event.members_version)
          this.sendEvent(event)
        }
        return
      default:
        if (feed) this.sendEvent(event)
    }
  }

  /**
   * A message stored under a membership version this socket has not seen means a removal it has
   * not heard of yet (its event can be overtaken by another instance's publish). Re-check
   * membership before delivering; on the same instance versions always arrive in order, so this
   * costs a query only after a removal, or on a conversation joined after the socket opened.
   */
  private pushChecked(feed: ConversationFeed, event: MessageEvent): void {
    const conversationId = event.conversation_id
    const known = this.knownVersion.get(conversationId)
    const waiting = this.unverified?.get(conversationId)
    if (waiting === undefined && known !== undefined && event.members_version <= known) {
      feed.push(event.message)
      return
    }
    if (waiting) {
      waiting.push(event.message)
      return
    }
    this.unverified ??= new Map()
    this.unverified.set(conversationId, [event.message])
    this.services.conversations
      .requireMember(this.userId, conversationId)
      .then(
        () => {
          this.learnVersion(conversationId, event.members_version)
          for (const m of this.unverified?.get(conversationId) ?? []) feed.push(m)
        },
        async (err) => {
          // Database unavailable: drop them; the feed's next store read re-checks membership in
          // its query and delivers them if the user is still a member.
          if (!(err instanceof NotFoundError)) return
          // Removed, and the removal's event has not arrived: its record says where they stopped.
          const departure = await this.services.conversations.departure(this.userId, conversationId)
          const at = departure ?? { seq: feed.position, membersVersion: event.members_version }
          this.leave(conversationId, removal(conversationId, this.userId, at))
        },
      )
      .catch((err) => this.sink.reportFailure(err))
      .finally(() => this.unverified?.delete(conversationId))
  }

  private learnVersion(conversationId: string, version: number): void {
    if (version <= (this.knownVersion.get(conversationId) ?? -1)) return
    if (this.knownVersion === NO_VERSIONS) this.knownVersion = new Map()
    this.knownVersion.set(conversationId, version)
  }

  private stashEarly(m: MessageView): void {
    this.early ??= new Map()
    const list = this.early.get(m.conversation_id) ?? []
    list.push(m)
    this.early.set(m.conversation_id, list)
  }

  /** The user socket starts following a conversation the user just joined, from `seq`. */
  private async join(conversationId: string, seq: number, event: ChatEvent): Promise<void> {
    if (this.bound || this.feeds.has(conversationId)) return
    this.sendEvent(event)
    await this.subscribe(conversationChannel(conversationId))
    if (!this.closed && !this.feeds.has(conversationId)) this.addFeed(conversationId, seq, true)
  }

  /**
   * Removed from a conversation at `event.seq`: the socket stops listening to it at once, delivers
   * what was committed up to the removal (from the store when it has not arrived live), then
   * sends the removal and forgets the conversation (a bound socket closes).
   */
  private leave(conversationId: string, event: RemovalEvent): void {
    const feed = this.feeds.get(conversationId)
    if (!feed || this.leaving?.has(conversationId)) return
    this.leaving ??= new Set()
    this.leaving.add(conversationId)
    this.unsubscribeFrom(conversationChannel(conversationId))
    feed.finishAt(event.seq, () => {
      this.leaving?.delete(conversationId)
      this.feeds.delete(conversationId)
      this.sendEvent(event)
      if (this.bound === conversationId) this.sink.close(CloseCode.Forbidden, 'removed from the conversation')
    })
  }

  /**
   * A `sync` for a conversation the user was removed from while their socket was away: deliver
   * what they missed up to the removal (committed while they were a member), then the removal;
   * nothing after it. False when they were never removed from it (then it is not_found).
   */
  private async resumeDeparted(conversationId: string, cursor: number): Promise<boolean> {
    if (this.bound) return false
    const departure = await this.services.conversations.departure(this.userId, conversationId)
    if (!departure || this.feeds.has(conversationId)) return departure !== undefined
    const feed = this.addFeed(conversationId, Math.min(cursor, departure.seq), false)
    this.leave(conversationId, removal(conversationId, this.userId, departure))
    await feed.fill()
    return true
  }

  private sendEvent(event: ChatEvent): void {
    const s = eventFrameFor(event, this.userId)
    if (s !== undefined) this.sink.send(s)
  }
}
