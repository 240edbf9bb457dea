import { ConflictError, invalid, NotFoundError } from '../errors.js'
import { isUuid } from '../lib/ids.js'
import type { ReactionView } from '../protocol/message.js'
import { recordChange } from '../store/changes.js'
import type { Db } from '../store/db.js'
import { lockVisibleMessage } from '../store/messages.js'
import * as store from '../store/reactions.js'
import type { MessageRow } from '../store/schema.js'
import { checkReaction } from './emoji.js'
import type { Broker } from './ports.js'

export interface ReactionLimits {
  /** Distinct emojis on one message. */
  perMessage: number
  /** Emojis one user may put on one message. */
  perUser: number
}

export const DEFAULT_REACTION_LIMITS: ReactionLimits = { perMessage: 20, perUser: 10 }

export interface ReactionsResult {
  message_id: string
  rev: number
  reactions: ReactionView[]
}

/**
 * Adding and removing reactions. Each change runs under the message's row lock (the same lock
 * edits and deletes take), so limits hold and counts are exact however many members react at
 * once; the committed summary is published as `message.reactions` with the message's new `rev`.
 */
export class ReactionService {
  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
    private readonly limits: ReactionLimits = DEFAULT_REACTION_LIMITS,
  ) {}

  /** Idempotent: adding a reaction the user has already changes nothing and publishes nothing. */
  add(userId: string, messageId: string, emoji: string): Promise<ReactionsResult> {
    return this.change(userId, messageId, emoji, async (tx, msg, e) => {
      if (msg.deletedAt) throw new ConflictError('the message was deleted')
      const counts = await store.reactionCounts(tx, msg.conversationId, msg.id, userId, e)
      if (counts.mine.includes(e)) return false
      if (!counts.present && counts.distinct >= this.limits.perMessage)
        throw invalid('emoji', `a message holds at most ${this.limits.perMessage} different reactions`)
      if (counts.mine.length >= this.limits.perUser)
        throw invalid('emoji', `you may put at most ${this.limits.perUser} reactions on one message`)
      return store.insertReaction(tx, msg.conversationId, msg.id, userId, e)
    })
  }

  /** Idempotent: removing a reaction the user does not have changes nothing. */
  remove(userId: string, messageId: string, emoji: string): Promise<ReactionsResult> {
    return this.change(userId, messageId, emoji, (tx, msg, e) =>
      store.deleteReaction(tx, msg.conversationId, msg.id, userId, e),
    )
  }

  private async change(
    userId: string,
    messageId: string,
    emoji: string,
    apply: (tx: Db, msg: MessageRow, emoji: string) => Promise<boolean>,
  ): Promise<ReactionsResult> {
    if (!isUuid(messageId)) throw new NotFoundError('message')
    const { state, changed, conversationId, seq, change } = await this.db.transaction(async (tx) => {
      const locked = await lockVisibleMessage(tx, userId, messageId)
      if (!locked) throw new NotFoundError('message')
      // A stranger learns nothing, not even that the emoji was malformed: membership first.
      const e = checkReaction(emoji)
      const changed = await apply(tx, locked, e)
      const rev = changed ? await store.bumpReactionsRev(tx, locked.id) : locked.reactionsRev
      const state = await store.reactionState(tx, locked.conversationId, locked.id, rev)
      // Last: it locks the conversation's row until the commit.
      const change = changed ? await recordChange(tx, locked.conversationId, locked.id) : 0
      return { state, changed, conversationId: locked.conversationId, seq: locked.seq, change }
    })
    if (changed)
      this.broker.publish({
        type: 'message.reactions',
        conversation_id: conversationId,
        message_id: messageId,
        seq,
        rev: state.rev,
        change_seq: change,
        reactions: state.totals,
        reactors: state.reactors,
      })
    const mine = new Set(state.reactors[userId] ?? [])
    return {
      message_id: messageId,
      rev: state.rev,
      reactions: state.totals.map((t) => ({ ...t, me: mine.has(t.emoji) })),
    }
  }
}
