import { and, desc, eq, lt } from 'drizzle-orm'
import type { Db } from './db.js'
import { isUniqueViolation } from './pg-errors.js'
import {
  type ReportReason,
  type ReportResolution,
  type ReportRow,
  messageReports as reports,
} from './schema.js'

export type NewReport = Pick<
  ReportRow,
  'id' | 'conversationId' | 'messageId' | 'reporterId' | 'reason' | 'note' | 'snapshot'
>

/**
 * Stores a report, or returns the reporter's open report of the same message (`created: false`):
 * the partial unique index decides, so two reports sent at once still make one.
 */
export async function insertReport(db: Db, report: NewReport): Promise<{ row: ReportRow; created: boolean }> {
  try {
    const [row] = await db.insert(reports).values(report).returning()
    return { row: row as ReportRow, created: true }
  } catch (err) {
    if (!isUniqueViolation(err)) throw err
  }
  const [existing] = await db
    .select()
    .from(reports)
    .where(
      and(
        eq(reports.conversationId, report.conversationId),
        eq(reports.messageId, report.messageId),
        eq(reports.reporterId, report.reporterId as string),
        eq(reports.status, 'open'),
      ),
    )
  if (!existing) throw new Error('open report vanished between insert and read')
  return { row: existing, created: false }
}

export interface ReportFilter {
  status?: 'open' | 'resolved' | undefined
  reason?: ReportReason | undefined
  conversationId?: string | undefined
  /** Keyset: reports older than this id (UUIDv7: id order is time order). */
  beforeId?: string | undefined
  limit: number
}

/** Newest first. */
export async function listReports(db: Db, f: ReportFilter): Promise<ReportRow[]> {
  return db
    .select()
    .from(reports)
    .where(
      and(
        f.status === undefined ? undefined : eq(reports.status, f.status),
        f.reason === undefined ? undefined : eq(reports.reason, f.reason),
        f.conversationId === undefined ? undefined : eq(reports.conversationId, f.conversationId),
        f.beforeId === undefined ? undefined : lt(reports.id, f.beforeId),
      ),
    )
    .orderBy(desc(reports.id))
    .limit(f.limit)
}

/** The report, locked for update (resolution), or undefined. */
export async function lockReport(tx: Db, id: string): Promise<ReportRow | undefined> {
  const [row] = await tx.select().from(reports).where(eq(reports.id, id)).for('update')
  return row
}

export async function markResolved(
  tx: Db,
  report: ReportRow,
  resolution: ReportResolution,
  resolvedBy: string,
): Promise<ReportRow> {
  const [row] = await tx
    .update(reports)
    .set({ status: 'resolved', resolution, resolvedBy, resolvedAt: new Date() })
    .where(and(eq(reports.conversationId, report.conversationId), eq(reports.id, report.id)))
    .returning()
  return row as ReportRow
}
