import { and, desc, eq, lt } from 'drizzle-orm'
import type { Db } from './db.js'
import { type AuditRow, auditLog } from './schema.js'

/** What an audit entry records; the id and time are added here. */
export interface AuditEntry {
  actorId: string
  action: string
  targetType: 'user' | 'message' | 'report' | 'conversation'
  targetId: string
  details?: Record<string, unknown>
}

/** Appends one entry; run it in the action's own transaction, so both commit or neither does. */
export async function appendAudit(db: Db, id: string, entry: AuditEntry): Promise<void> {
  await db.insert(auditLog).values({ id, ...entry, details: entry.details ?? {} })
}

export interface AuditFilter {
  action?: string | undefined
  actorId?: string | undefined
  targetId?: string | undefined
  /** Keyset: entries older than this id (ids are UUIDv7, so id order is time order). */
  beforeId?: string | undefined
  limit: number
}

/** Newest first. */
export async function listAudit(db: Db, f: AuditFilter): Promise<AuditRow[]> {
  return db
    .select()
    .from(auditLog)
    .where(
      and(
        f.action === undefined ? undefined : eq(auditLog.action, f.action),
        f.actorId === undefined ? undefined : eq(auditLog.actorId, f.actorId),
        f.targetId === undefined ? undefined : eq(auditLog.targetId, f.targetId),
        f.beforeId === undefined ? undefined : lt(auditLog.id, f.beforeId),
      ),
    )
    .orderBy(desc(auditLog.id))
    .limit(f.limit)
}
