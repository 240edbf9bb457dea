import { sql } from 'drizzle-orm'
import { type Db, rowsOf } from './db.js'
import { outboxDeliveries, outboxEvents } from './schema.js'

/**
 * The outbox's SQL (docs/notifications.md, "The outbox"). Events are written in the caller's
 * transaction; everything else runs in short transactions of its own: a worker never holds a
 * row lock (or, on PGlite, the only connection) while it talks to a receiver. A claim sets a
 * lease instead (`lease_until`, `next_attempt_at`), taken with `FOR UPDATE SKIP LOCKED` so that
 * instances claiming at once take different rows; a claim whose instance died runs again once
 * its lease is over. Time is the database's (`now()`), the same for every instance.
 */

export interface StoredEvent {
  id: string
  type: string
  conversationId: string | null
  /** Milliseconds since the epoch. */
  occurredAt: number
  data: unknown
}

export interface DeliveryKey {
  eventId: string
  channel: string
  target: string
}

export interface ClaimedDelivery extends DeliveryKey {
  /** This attempt's number (1 for the first); settling checks it, so a stale claimant changes nothing. */
  attempt: number
  event: StoredEvent
}

const ms = (n: number) => sql`(${Math.max(0, Math.round(n))}::double precision * interval '1 millisecond')`

/** Writes events in the caller's transaction: one statement whatever their number. */
export async function insertEvents(tx: Db, events: StoredEvent[]): Promise<void> {
  if (events.length === 0) return
  const rows = events.map((e) => ({ i: e.id, t: e.type, c: e.conversationId, d: e.data, o: e.occurredAt }))
  await tx.execute(sql`
    insert into ${outboxEvents} (id, type, about_conversation, data, occurred_at)
    select x.i, x.t, x.c, x.d, to_timestamp(x.o / 1000.0)
    from json_to_recordset(${JSON.stringify(rows)}::json) as x(i uuid, t text, c uuid, d jsonb, o double precision)`)
}

/** Up to `limit` events not yet expanded (and not leased by another worker), leased for `leaseMs`. */
export async function claimEvents(db: Db, limit: number, leaseMs: number): Promise<StoredEvent[]> {
  const result = await db.execute(sql`
    with due as (
      select id from ${outboxEvents}
      where expanded_at is null and (lease_until is null or lease_until < now())
      order by id
      limit ${limit}
      for update skip locked
    )
    update ${outboxEvents} e set lease_until = now() + ${ms(leaseMs)}
    from due where e.id = due.id
    returning e.id, e.type, e.about_conversation, e.data,
      (extract(epoch from e.occurred_at) * 1000)::float8 as occurred_ms`)
  return rowsOf(result)
    .map(toEvent)
    .sort((a, b) => (a.id < b.id ? -1 : 1))
}

/** Records each event's targets and marks the events expanded, in one transaction. */
export async function finishExpansion(db: Db, eventIds: string[], deliveries: DeliveryKey[]): Promise<void> {
  if (eventIds.length === 0) return
  await db.transaction(async (tx) => {
    if (deliveries.length > 0) {
      const rows = deliveries.map((d) => ({ e: d.eventId, c: d.channel, t: d.target }))
      // `on conflict do nothing`: an instance whose lease ran out may expand the same event again.
      await tx.execute(sql`
        insert into ${outboxDeliveries} (event_id, channel, target, next_attempt_at, created_at)
        select x.e, x.c, x.t, now(), now()
        from json_to_recordset(${JSON.stringify(rows)}::json) as x(e uuid, c text, t text)
        on conflict do nothing`)
    }
    await tx.execute(sql`
      update ${outboxEvents} set expanded_at = now(), lease_until = null
      where id = any(${`{${eventIds.join(',')}}`}::uuid[])`)
  })
}

/** Up to `limit` due deliveries with their events, leased for `leaseMs` (their attempt counted). */
export async function claimDeliveries(db: Db, limit: number, leaseMs: number): Promise<ClaimedDelivery[]> {
  const result = await db.execute(sql`
    with due as (
      select event_id, channel, target from ${outboxDeliveries}
      where status = 'pending' and next_attempt_at <= now()
      order by next_attempt_at
      limit ${limit}
      for update skip locked
    )
    update ${outboxDeliveries} d
    set attempts = d.attempts + 1, next_attempt_at = now() + ${ms(leaseMs)}
    from due, ${outboxEvents} e
    where d.event_id = due.event_id and d.channel = due.channel and d.target = due.target
      and e.id = d.event_id
    returning d.event_id, d.channel, d.target, d.attempts, e.id, e.type, e.about_conversation, e.data,
      (extract(epoch from e.occurred_at) * 1000)::float8 as occurred_ms`)
  return rowsOf(result).map((r) => ({
    eventId: r.event_id as string,
    channel: r.channel as string,
    target: r.target as string,
    attempt: Number(r.attempts),
    event: toEvent(r),
  }))
}

export type Settlement =
  | { kind: 'delivered' }
  | { kind: 'gone'; error: string }
  /** Due again after `delayMs`, unless `maxAgeMs` since the delivery was created has passed: then dead. */
  | { kind: 'retry'; error: string; delayMs: number; maxAgeMs: number }

/**
 * The outcome of attempt `attempt`. Returns the delivery's new status, or undefined when the
 * attempt was no longer the current one (its lease ran out and another instance took it).
 */
export async function settle(
  db: Db,
  d: DeliveryKey & { attempt: number },
  outcome: Settlement,
): Promise<string | undefined> {
  const where = sql`event_id = ${d.eventId} and channel = ${d.channel} and target = ${d.target}
    and attempts = ${d.attempt} and status = 'pending'`
  let result: unknown
  if (outcome.kind === 'delivered') {
    result = await db.execute(sql`
      update ${outboxDeliveries} set status = 'delivered', finished_at = now(), last_error = null
      where ${where} returning status`)
  } else if (outcome.kind === 'gone') {
    result = await db.execute(sql`
      update ${outboxDeliveries} set status = 'gone', finished_at = now(), last_error = ${clip(outcome.error)}
      where ${where} returning status`)
  } else {
    const deadline = sql`created_at + ${ms(outcome.maxAgeMs)}`
    // The last attempt runs at the deadline itself; a failure at or after it is final.
    result = await db.execute(sql`
      update ${outboxDeliveries} set
        status = case when now() >= ${deadline} then 'dead' else 'pending' end,
        finished_at = case when now() >= ${deadline} then now() end,
        next_attempt_at = least(now() + ${ms(outcome.delayMs)}, ${deadline}),
        last_error = ${clip(outcome.error)}
      where ${where} returning status`)
  }
  return rowsOf(result)[0]?.status as string | undefined
}

/** Deletes finished deliveries kept long enough, then events with nothing left to deliver. */
export async function cleanup(db: Db, keepDeliveredMs: number, keepDeadMs: number): Promise<number> {
  const deleted = await db.execute(sql`
    delete from ${outboxDeliveries}
    where status <> 'pending' and finished_at < now() - case when status = 'delivered' or status = 'gone'
      then ${ms(keepDeliveredMs)} else ${ms(keepDeadMs)} end
    returning 1`)
  await db.execute(sql`
    delete from ${outboxEvents} e
    where e.expanded_at is not null and e.expanded_at < now() - ${ms(keepDeliveredMs)}
      and not exists (select 1 from ${outboxDeliveries} d where d.event_id = e.id)`)
  return rowsOf(deleted).length
}

export interface OutboxBacklog {
  /** Deliveries not finished, plus events not yet expanded. */
  pending: number
  /** Age of the oldest of them, in seconds (0 when none). */
  oldestAgeSec: number
}

export async function backlog(db: Db): Promise<OutboxBacklog> {
  const result = await db.execute(sql`
    select
      (select count(*) from ${outboxDeliveries} where status = 'pending')::int
        + (select count(*) from ${outboxEvents} where expanded_at is null)::int as pending,
      coalesce(extract(epoch from now() - least(
        (select min(created_at) from ${outboxDeliveries} where status = 'pending'),
        (select min(occurred_at) from ${outboxEvents} where expanded_at is null)
      )), 0)::float8 as oldest`)
  const row = rowsOf(result)[0] ?? {}
  return { pending: Number(row.pending ?? 0), oldestAgeSec: Number(row.oldest ?? 0) }
}

/** Each delivery's state, for tests and operators' tooling. */
export async function deliveriesOf(db: Db, eventId: string) {
  const result = await db.execute(sql`
    select channel, target, status, attempts, last_error from ${outboxDeliveries}
    where event_id = ${eventId} order by channel, target`)
  return rowsOf(result).map((r) => ({
    channel: r.channel as string,
    target: r.target as string,
    status: r.status as string,
    attempts: Number(r.attempts),
    lastError: (r.last_error as string | null) ?? null,
  }))
}

function toEvent(r: Record<string, unknown>): StoredEvent {
  return {
    id: r.id as string,
    type: r.type as string,
    conversationId: (r.about_conversation as string | null) ?? null,
    occurredAt: Number(r.occurred_ms),
    data: typeof r.data === 'string' ? JSON.parse(r.data) : r.data,
  }
}

/** Errors are kept short: a receiver's answer could be anything. */
const clip = (s: string) => s.slice(0, 500)
