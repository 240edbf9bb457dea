import type { Quota } from '../errors.js'
import { listBlocks } from '../store/blocks.js'
import type { Db } from '../store/db.js'
import { type ExportedMessage, membershipsOf, messagesBySender } from '../store/export.js'
import type { UserRow } from '../store/schema.js'
import type { RateLimiter } from './ports.js'
import { consume } from './rate-limits.js'
import { toPrivateUser } from './users.js'

/** Exports per user per window (docs/moderation.md): an export reads every message the user sent. */
export const EXPORT_MAX_PER_WINDOW = 2
export const EXPORT_WINDOW_SEC = 3600
/** Rows read per query: the most the server holds of one export at a time. */
export const EXPORT_PAGE = 500

export const EXPORT_FORMAT = 'chat-api.export.v1'

/**
 * A user's data export (GET /users/me/export): their account, their memberships, the blocks they
 * made and every message they sent, with its attachments listed (metadata and URLs, not bytes).
 * Written out as it is read, a keyset page at a time: the caller pulls chunks, and the next page
 * is read only when the previous one has been taken, so memory stays flat whatever the size and
 * a slow reader slows the reads instead of filling memory.
 */
export class ExportService {
  constructor(
    private readonly db: Db,
    private readonly limiter: RateLimiter,
    /** Undefined when RATE_LIMITS=off. */
    private readonly limit: { max: number; windowSec: number } | undefined,
    private readonly pageSize = EXPORT_PAGE,
  ) {}

  /** Counts the export against the user's limit (429 past it), then returns the document's chunks. */
  async start(user: UserRow): Promise<{ quota: Quota | undefined; chunks: AsyncIterable<string> }> {
    const quota = this.limit
      ? await consume(this.limiter, `export:${user.id}`, this.limit.max, this.limit.windowSec)
      : undefined
    return { quota, chunks: this.document(user) }
  }

  private async *document(user: UserRow): AsyncGenerator<string> {
    const head = {
      format: EXPORT_FORMAT,
      exported_at: new Date().toISOString(),
      account: toPrivateUser(user),
    }
    yield `${JSON.stringify(head).slice(0, -1)},"memberships":[`
    yield* this.pages(
      (after) => membershipsOf(this.db, user.id, after, this.pageSize),
      (m) => m.conversationId,
      (m) => ({
        conversation_id: m.conversationId,
        kind: m.kind,
        title: m.title,
        role: m.role,
        joined_at: m.joinedAt.toISOString(),
        last_read_seq: m.lastReadSeq,
      }),
    )
    yield '],"blocks":['
    let cursor: { at: Date; id: string } | undefined
    yield* this.pages(
      async () => {
        const rows = await listBlocks(this.db, user.id, cursor, this.pageSize)
        const last = rows.at(-1)
        cursor = last && { at: last.createdAt, id: last.userId }
        return rows
      },
      (b) => b.userId,
      (b) => ({ user_id: b.userId, blocked_at: b.createdAt.toISOString() }),
    )
    yield '],"messages":['
    yield* this.pages(
      (after) => messagesBySender(this.db, user.id, after, this.pageSize),
      (m) => m.id,
      messageEntry,
    )
    yield ']}'
  }

  /** Every row `read` returns, page after page (each after the last key), as comma-joined JSON. */
  private async *pages<R>(
    read: (after: string | undefined) => Promise<R[]>,
    key: (row: R) => string,
    view: (row: R) => unknown,
  ): AsyncGenerator<string> {
    let after: string | undefined
    let first = true
    for (;;) {
      const rows = await read(after)
      if (rows.length > 0) {
        yield `${first ? '' : ','}${rows.map((r) => JSON.stringify(view(r))).join(',')}`
        first = false
        after = key(rows.at(-1) as R)
      }
      if (rows.length < this.pageSize) return
    }
  }
}

const iso = (d: Date | null) => d?.toISOString() ?? null

/** A sent message as exported: what the sender wrote and when, and what they attached. */
const messageEntry = (m: ExportedMessage) => ({
  id: m.id,
  conversation_id: m.conversationId,
  seq: m.seq,
  content: m.content,
  client_msg_id: m.clientMsgId,
  created_at: m.createdAt.toISOString(),
  edited_at: iso(m.editedAt),
  deleted_at: iso(m.deletedAt),
  reply_to_id: m.replyToId,
  attachments: m.attachments.map((a) => ({ ...a, url: `/api/v1/chat/attachments/${a.id}` })),
})
