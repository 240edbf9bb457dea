import { ChatError } from './errors.js'
import { expiredCopy } from './protocol.js'
import type { RestClient } from './rest.js'
import type { Conversation, CreateGroupInput, Message, PublicUser } from './rest-types.js'
import type { MessageChangedEvent } from './types.js'

export interface ConversationListDeps {
  rest: RestClient
  me(): string | undefined
  /** The list changed (order, last message, unread counts, titles, members). */
  changed(items: readonly Conversation[]): void
  unread(conversationId: string, count: number): void
  error(err: ChatError): void
}

/**
 * The caller's conversations, most recent activity first, kept current from the socket:
 * a delivered message moves its conversation to the top and counts as unread when someone else
 * sent it; the user's own read marker clears the count (re-read from the server when the marker
 * stops short of the newest message, since only the server knows what lies between).
 */
export class ConversationList {
  private readonly byId = new Map<string, Conversation>()
  private sorted: Conversation[] = []
  private loaded = false
  private readonly refreshing = new Map<string, Promise<Conversation | undefined>>()
  private readonly stale = new Set<string>()

  constructor(private readonly deps: ConversationListDeps) {}

  /** The conversations, most recent activity first. */
  get items(): readonly Conversation[] {
    return this.sorted
  }

  get isLoaded(): boolean {
    return this.loaded
  }

  get(conversationId: string): Conversation | undefined {
    return this.byId.get(conversationId)
  }

  unreadCount(conversationId: string): number {
    return this.byId.get(conversationId)?.unread_count ?? 0
  }

  /** Reads every conversation from the server (all pages). */
  async load(): Promise<readonly Conversation[]> {
    const all: Conversation[] = []
    let cursor: string | undefined
    do {
      const page = await this.deps.rest.get('/api/v1/chat/conversations', {
        query: { limit: 100, ...(cursor ? { cursor } : {}) },
      })
      all.push(...page.items)
      cursor = page.next_cursor ?? undefined
    } while (cursor)
    this.byId.clear()
    for (const c of all) this.byId.set(c.id, c)
    this.loaded = true
    this.publish()
    return this.sorted
  }

  /** Re-reads one conversation (a new one, or one whose members or unread count changed). */
  refresh(conversationId: string): Promise<Conversation | undefined> {
    // A burst of messages in an unknown conversation asks once; a change during a read, once more.
    const running = this.refreshing.get(conversationId)
    if (running) {
      this.stale.add(conversationId)
      return running
    }
    const read: Promise<Conversation | undefined> = this.read(conversationId).then((c) => {
      this.refreshing.delete(conversationId)
      if (!this.stale.delete(conversationId)) return c
      return this.refresh(conversationId)
    })
    this.refreshing.set(conversationId, read)
    return read
  }

  private async read(conversationId: string): Promise<Conversation | undefined> {
    try {
      const c = await this.deps.rest.get('/api/v1/chat/conversations/{id}', {
        params: { id: conversationId },
      })
      this.byId.set(c.id, c)
      this.publish()
      this.deps.unread(c.id, c.unread_count)
      return c
    } catch (err) {
      const error = err instanceof ChatError ? err : new ChatError('network', String(err))
      if (error.status === 404) this.remove(conversationId)
      else this.deps.error(error)
      return undefined
    }
  }

  /** Opens (or finds) the direct conversation with a user. */
  async openDirect(userId: string): Promise<Conversation> {
    const c = await this.deps.rest.post('/api/v1/chat/conversations', { body: { recipient_id: userId } })
    this.byId.set(c.id, c)
    this.publish()
    return c
  }

  /** Creates a group owned by the caller. */
  async createGroup(input: CreateGroupInput): Promise<Conversation> {
    const c = await this.deps.rest.post('/api/v1/chat/groups', { body: input })
    this.byId.set(c.id, c)
    this.publish()
    return c
  }

  async addMember(conversationId: string, userId: string): Promise<void> {
    await this.deps.rest.post('/api/v1/chat/conversations/{id}/members', {
      params: { id: conversationId },
      body: { user_id: userId },
    })
    await this.refresh(conversationId)
  }

  /** Removes a member, or leaves when `userId` is the caller. */
  async removeMember(conversationId: string, userId: string): Promise<void> {
    await this.deps.rest.delete('/api/v1/chat/conversations/{id}/members/{user_id}', {
      params: { id: conversationId, user_id: userId },
    })
    if (userId === this.deps.me()) this.remove(conversationId)
    else await this.refresh(conversationId)
  }

  async rename(conversationId: string, title: string): Promise<void> {
    await this.deps.rest.patch('/api/v1/chat/conversations/{id}', {
      params: { id: conversationId },
      body: { title },
    })
    await this.refresh(conversationId)
  }

  /** People by name prefix (or email prefix when the query has an "@"). */
  async searchUsers(query: string, limit = 20): Promise<PublicUser[]> {
    const page = await this.deps.rest.get('/api/v1/users', { query: { query, limit } })
    return page.items
  }

  /** A message was delivered: last message, order and unread count follow. */
  delivered(conversationId: string, message: Message): void {
    const c = this.byId.get(conversationId)
    if (!c) {
      if (this.loaded) void this.refresh(conversationId)
      return
    }
    if (message.seq <= c.last_seq) return
    const me = this.deps.me()
    const readSeq = c.members.find((m) => m.user_id === me)?.last_read_seq ?? 0
    const fromOther = message.sender_id !== me
    const next: Conversation = {
      ...c,
      last_seq: message.seq,
      last_message: message,
      last_activity_at: message.created_at,
      unread_count: c.unread_count + (fromOther && message.seq > readSeq ? 1 : 0),
    }
    this.byId.set(conversationId, next)
    this.publish()
    if (next.unread_count !== c.unread_count) this.deps.unread(conversationId, next.unread_count)
  }

  /** An edit or delete: the last message shown in the list follows it. */
  amended(conversationId: string, message: Message): void {
    this.changed({
      conversationId,
      messageId: message.id,
      seq: message.seq,
      changeSeq: message.change_seq,
      changes: message,
    })
  }

  /** Messages the conversation's retention expired: the last message shown, if among them, becomes a tombstone. */
  expired(conversationId: string, seqs: readonly number[], expiredAt: string): void {
    const c = this.byId.get(conversationId)
    const last = c?.last_message
    if (!c || !last || !seqs.includes(last.seq) || last.deleted_at !== null) return
    this.byId.set(conversationId, { ...c, last_message: expiredCopy(last, expiredAt) })
    this.publish()
  }

  /** Any change to a message (see MessageChangedEvent): the last message shown follows it, if newer. */
  changed(e: MessageChangedEvent): void {
    const c = this.byId.get(e.conversationId)
    const last = c?.last_message
    if (!c || !last || last.id !== e.messageId || e.changeSeq <= last.change_seq) return
    this.byId.set(e.conversationId, {
      ...c,
      last_message: { ...last, ...e.changes, change_seq: e.changeSeq },
      change_seq: Math.max(c.change_seq, e.changeSeq),
    })
    this.publish()
  }

  /** A member's read marker moved (the caller's own clears unread messages up to it). */
  markerMoved(conversationId: string, userId: string, seq: number): void {
    const c = this.byId.get(conversationId)
    if (!c) return
    const members = c.members.map((m) =>
      m.user_id === userId && seq > m.last_read_seq ? { ...m, last_read_seq: seq } : m,
    )
    let unread = c.unread_count
    if (userId === this.deps.me()) {
      if (seq >= c.last_seq) unread = 0
      else void this.refresh(conversationId)
    }
    this.byId.set(conversationId, { ...c, members, unread_count: unread })
    this.publish()
    if (unread !== c.unread_count) this.deps.unread(conversationId, unread)
  }

  renamed(conversationId: string, title: string | null): void {
    const c = this.byId.get(conversationId)
    if (!c) return
    this.byId.set(conversationId, { ...c, title })
    this.publish()
  }

  remove(conversationId: string): void {
    if (!this.byId.delete(conversationId)) return
    this.publish()
  }

  clear(): void {
    this.byId.clear()
    this.loaded = false
    this.publish()
  }

  private publish(): void {
    this.sorted = [...this.byId.values()].sort((a, b) =>
      a.last_activity_at < b.last_activity_at ? 1 : a.last_activity_at > b.last_activity_at ? -1 : 0,
    )
    this.deps.changed(this.sorted)
  }
}
