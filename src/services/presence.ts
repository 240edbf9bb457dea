import type { ConversationService } from './conversations.js'
import type { Broker, Presence } from './ports.js'

/**
 * Who is online, as sockets come and go. A user is online while they hold a socket on any
 * instance; peers in shared conversations hear when the first socket opens and the last closes.
 */
export class PresenceService {
  constructor(
    /** The shared counts (in-process, or Redis with its fallback). */
    readonly counts: Presence,
    private readonly conversations: ConversationService,
    private readonly broker: Broker,
  ) {}

  /**
   * A socket of `userId` opened or closed. `followed` are the conversations it follows; a socket
   * bound to one conversation passes undefined, and the user's peers everywhere are told.
   */
  async changed(userId: string, status: 'online' | 'offline', followed: string[] | undefined): Promise<void> {
    const changed =
      status === 'online' ? await this.counts.connect(userId) : await this.counts.disconnect(userId)
    if (!changed) return
    const ids = followed ?? (await this.conversations.memberships(userId)).map((m) => m.conversationId)
    for (const conversationId of ids) {
      this.broker.publish({ type: 'presence', conversation_id: conversationId, user_id: userId, status })
    }
  }

  /** Who is online among the people the user can see (in `conversationId` only, when given). */
  async onlinePeers(userId: string, conversationId?: string): Promise<Set<string>> {
    return this.counts.onlineAmong(await this.conversations.peers(userId, conversationId))
  }

  /** Sockets the user holds across instances (the per-user connection limit). */
  connections(userId: string): Promise<number> {
    return this.counts.connections(userId)
  }

  close(): Promise<void> {
    return this.counts.close()
  }
}
