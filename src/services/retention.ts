import { ForbiddenError, NotFoundError } from '../errors.js'
import { isUuid } from '../lib/ids.js'
import type { AttachmentRef } from '../store/attachments.js'
import { tryJobLock } from '../store/attachments.js'
import { findConversation } from '../store/conversations.js'
import type { Db } from '../store/db.js'
import { type ExpiredMessage, expireBatch, FIRST_CONVERSATION, setRetentionDays } from '../store/retention.js'
import type { ConversationService } from './conversations.js'
import type { Broker } from './ports.js'

/** Bounds of a conversation's own retention, in days (about a hundred years at most). */
export const RETENTION_DAYS_MIN = 1
export const RETENTION_DAYS_MAX = 36500
/** Advisory lock id of the retention job (one instance at a time); the attachment sweep's is 72_410_013. */
const RETENTION_LOCK_ID = 72_410_014
/** Seqs per `messages.expired` event, so a frame stays small whatever the batch size. */
const SEQS_PER_EVENT = 500

export interface RetentionSettings {
  /** MESSAGE_RETENTION_DAYS: applies to conversations without a setting of their own; null: kept forever. */
  defaultDays: number | null
  /** Messages tombstoned per transaction (RETENTION_BATCH_SIZE). */
  batchSize: number
}

/** What one run did. `busy`: another instance held the job's lock, so this one stopped. */
export interface RetentionRun {
  expired: number
  batches: number
  busy: boolean
}

/** Where the files of expired messages go: `AttachmentService.remove` (objects, then rows). */
export type RemoveAttachments = (refs: AttachmentRef[]) => Promise<void>

/**
 * Message retention: the per-conversation setting, and the periodic job that tombstones expired
 * messages. Decisions and the why: docs/moderation.md, "Retention".
 */
export class RetentionService {
  constructor(
    private readonly db: Db,
    private readonly broker: Broker,
    private readonly conversations: ConversationService,
    private readonly settings: RetentionSettings,
    private readonly removeAttachments: RemoveAttachments,
    /** The job's clock: tests move it instead of waiting days. */
    private readonly now: () => Date = () => new Date(),
    /** Counts tombstoned messages (the `chat_retention_messages_expired_total` metric). */
    private readonly onExpired: (count: number) => void = () => undefined,
  ) {}

  /**
   * Sets a conversation's own retention (null: the server default applies). Group owners and
   * admins, or either member of a direct conversation; another member gets 403, a non-member 404.
   * Takes effect at the job's next run.
   */
  async set(userId: string, conversationId: string, days: number | null): Promise<void> {
    if (!isUuid(conversationId)) throw new NotFoundError('conversation')
    const member = await this.conversations.requireMember(userId, conversationId)
    const conv = await findConversation(this.db, conversationId)
    if (!conv) throw new NotFoundError('conversation')
    if (conv.kind === 'group' && member.role !== 'owner' && member.role !== 'admin')
      throw new ForbiddenError('only a group admin may change retention')
    await setRetentionDays(this.db, conversationId, days)
  }

  /**
   * One run of the job: batches of at most `batchSize` expired messages, each in its own
   * transaction under a transaction-level advisory lock, so one instance at a time works and a
   * crashed one holds nothing. Conversations are walked in id order; a run ends when a batch comes
   * back short, when another instance holds the lock (`busy`), or when `signal` is aborted
   * (shutdown). Nothing is lost by stopping anywhere: committed batches are done, and what is left
   * is found again by the next run (expired messages leave the index the job reads).
   */
  async run(signal?: AbortSignal): Promise<RetentionRun> {
    const { defaultDays, batchSize } = this.settings
    let from = FIRST_CONVERSATION
    let expired = 0
    let batches = 0
    while (!signal?.aborted) {
      const now = this.now()
      const batch = await this.db.transaction(async (tx) => {
        if (!(await tryJobLock(tx, RETENTION_LOCK_ID))) return undefined
        return expireBatch(tx, { now, defaultDays, from, limit: batchSize })
      })
      if (!batch) return { expired, batches, busy: true }
      batches++
      expired += batch.messages.length
      if (batch.messages.length > 0) this.onExpired(batch.messages.length)
      // A failure leaves the attachments marked: the attachment sweep deletes them later.
      await this.removeAttachments(batch.attachments).catch(() => undefined)
      this.publish(batch.messages, now)
      if (batch.messages.length < batchSize) break
      // The batch ended inside the last conversation it reached (in id order), which may have
      // more: the next batch starts at it again.
      from = lastConversation(batch.messages, from)
    }
    return { expired, batches, busy: false }
  }

  /**
   * Runs the job every `intervalSec` (never two runs at once on this instance) and hands each
   * outcome to `report`. `stop` ends a run between two batches and waits for it: what is left is
   * found again by the next run, here or on another instance.
   */
  every(intervalSec: number, report: (outcome: RetentionRun | Error) => void): { stop(): Promise<void> } {
    const abort = new AbortController()
    let running: Promise<void> | undefined
    const timer = setInterval(() => {
      if (running) return
      running = this.run(abort.signal)
        .then(report, (err) => report(err instanceof Error ? err : new Error(String(err))))
        .finally(() => {
          running = undefined
        })
    }, intervalSec * 1000)
    timer.unref()
    return {
      stop: async () => {
        clearInterval(timer)
        abort.abort()
        await running
      },
    }
  }

  /** One `messages.expired` per conversation (per SEQS_PER_EVENT seqs), instead of one event per message. */
  private publish(expired: ExpiredMessage[], now: Date): void {
    const byConversation = new Map<string, number[]>()
    for (const m of expired) {
      const seqs = byConversation.get(m.conversationId)
      if (seqs) seqs.push(m.seq)
      else byConversation.set(m.conversationId, [m.seq])
    }
    for (const [conversationId, seqs] of byConversation) {
      seqs.sort((a, b) => a - b)
      for (let i = 0; i < seqs.length; i += SEQS_PER_EVENT) {
        this.broker.publish({
          type: 'messages.expired',
          conversation_id: conversationId,
          seqs: seqs.slice(i, i + SEQS_PER_EVENT),
          expired_at: now.toISOString(),
        })
      }
    }
  }
}

/** The greatest conversation id among `expired` (ids compare as text as PostgreSQL orders uuids). */
function lastConversation(expired: ExpiredMessage[], from: string): string {
  let last = from
  for (const m of expired) if (m.conversationId > last) last = m.conversationId
  return last
}
