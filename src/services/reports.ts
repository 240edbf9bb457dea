import { ConflictError, invalid, NotFoundError } from '../errors.js'
import { decodeIdCursor, idPage } from '../lib/cursor.js'
import { isUuid, newId } from '../lib/ids.js'
import type { Db } from '../store/db.js'
import { lockVisibleMessage } from '../store/messages.js'
import * as reports from '../store/reports.js'
import type {
  MessageRow,
  MessageSnapshot,
  ReportReason,
  ReportResolution,
  ReportRow,
  UserRow,
} from '../store/schema.js'
import { audit, type ModerationService } from './moderation.js'
import type { RateLimiter } from './ports.js'
import { consume } from './rate-limits.js'
import { cleanText } from './text.js'

export const REPORT_NOTE_MAX = 1000

export interface ReportView {
  id: string
  conversation_id: string
  message_id: string
  reporter_id: string | null
  reason: ReportReason
  note: string | null
  status: 'open' | 'resolved'
  resolution: ReportResolution | null
  resolved_by: string | null
  resolved_at: string | null
  created_at: string
  /** The message as it was when reported. */
  message: MessageSnapshot
}

const toReportView = (r: ReportRow): ReportView => ({
  id: r.id,
  conversation_id: r.conversationId,
  message_id: r.messageId,
  reporter_id: r.reporterId,
  reason: r.reason,
  note: r.note,
  status: r.status,
  resolution: r.resolution,
  resolved_by: r.resolvedBy,
  resolved_at: r.resolvedAt?.toISOString() ?? null,
  created_at: r.createdAt.toISOString(),
  message: r.snapshot,
})

const snapshotOf = (m: MessageRow): MessageSnapshot => ({
  seq: m.seq,
  sender_id: m.senderId,
  content: m.content,
  attachments: m.attachments,
  created_at: m.createdAt.toISOString(),
  edited_at: m.editedAt?.toISOString() ?? null,
  deleted_at: m.deletedAt?.toISOString() ?? null,
})

/** Members report messages; operators list and resolve the reports (docs/moderation.md). */
export class ReportService {
  constructor(
    private readonly db: Db,
    private readonly moderation: ModerationService,
    private readonly limiter: RateLimiter,
    /** REPORT_MAX_PER_USER in REPORT_WINDOW_SEC; undefined when RATE_LIMITS=off. */
    private readonly limit?: { max: number; windowSec: number },
  ) {}

  /**
   * A member reports a message of their conversation (404 for anyone else). One open report per
   * reporter and message: reporting again returns the open one (`created: false`).
   */
  async report(
    reporterId: string,
    messageId: string,
    reason: ReportReason,
    noteInput: string | undefined,
  ): Promise<{ report: ReportView; created: boolean }> {
    const msg = isUuid(messageId)
      ? await this.db.transaction((tx) => lockVisibleMessage(tx, reporterId, messageId))
      : undefined
    if (!msg) throw new NotFoundError('message')
    const note =
      noteInput === undefined || noteInput.trim() === ''
        ? null
        : cleanText(noteInput, 'note', REPORT_NOTE_MAX)
    if (msg.senderId === reporterId) throw invalid('id', 'cannot report your own message')
    if (msg.deletedAt) throw new ConflictError('the message was deleted')
    if (this.limit)
      await consume(this.limiter, `report:user:${reporterId}`, this.limit.max, this.limit.windowSec)
    const { row, created } = await reports.insertReport(this.db, {
      id: newId(),
      conversationId: msg.conversationId,
      messageId: msg.id,
      reporterId,
      reason,
      note,
      snapshot: snapshotOf(msg),
    })
    return { report: toReportView(row), created }
  }

  /** Newest first, filtered; keyset pages by id. */
  async list(q: {
    status?: 'open' | 'resolved' | undefined
    reason?: ReportReason | undefined
    conversation_id?: string | undefined
    limit: number
    cursor?: string | undefined
  }) {
    const rows = await reports.listReports(this.db, {
      status: q.status,
      reason: q.reason,
      conversationId: q.conversation_id,
      beforeId: decodeIdCursor(q.cursor, isUuid),
      limit: q.limit + 1,
    })
    return idPage(rows, q.limit, (r) => r.id, toReportView)
  }

  /**
   * Resolves an open report (409 once resolved): `dismiss`, `delete_message` (the members' delete
   * path) or `suspend_user` (the sender). The action, the resolution and their audit entries
   * commit together.
   */
  async resolve(operator: UserRow, reportId: string, resolution: ReportResolution): Promise<ReportView> {
    let resolved: ReportRow | undefined
    const close = async (tx: Db) => {
      const report = await reports.lockReport(tx, reportId)
      if (!report) throw new NotFoundError('report')
      if (report.status !== 'open') throw new ConflictError('the report is resolved already')
      resolved = await reports.markResolved(tx, report, resolution, operator.id)
      await audit(tx, {
        actorId: operator.id,
        action: 'report.resolve',
        targetType: 'report',
        targetId: report.id,
        details: { resolution, conversation_id: report.conversationId, message_id: report.messageId },
      })
    }
    const report = isUuid(reportId) ? await this.find(reportId) : undefined
    if (!report) throw new NotFoundError('report')
    if (resolution === 'dismiss') await this.db.transaction(close)
    if (resolution === 'delete_message')
      await this.moderation.deleteMessage(operator, report.messageId, close)
    if (resolution === 'suspend_user') {
      const sender = report.snapshot.sender_id
      if (sender === null) throw invalid('action', 'the message has no sender to suspend')
      await this.moderation.suspend(operator, sender, { report_id: report.id }, close)
    }
    return toReportView(resolved as ReportRow)
  }

  private async find(id: string): Promise<ReportRow | undefined> {
    return this.db.transaction((tx) => reports.lockReport(tx, id))
  }
}
