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

/**
 * Records each event's targets and marks the events expanded, in one transaction. The first
 * `claimNow` deliveries are inserted already claimed (attempt 1, leased for `leaseMs`) and
 * returned, so the expanding worker starts them at once instead of claiming them back in another
 * query; the rest are due now for any instance. A delivery that already existed (an instance
 * whose lease ran out expanded the same event) is neither inserted nor returned.
 */
export async function finishExpansion(
  db: Db,
  eventIds: string[],
  deliveries: DeliveryKey[],
  claim: { count: number; leaseMs: number } = { count: 0, leaseMs: 0 },
): Promise<DeliveryKey[]> {
  if (eventIds.length === 0) return []
  return db.transaction(async (tx) => {
    let claimed: DeliveryKey[] = []
    if (deliveries.length > 0) {
      const rows = deliveries.map((d, i) => ({ e: d.eventId, c: d.channel, t: d.target, n: i < claim.count }))
      const result = await tx.execute(sql`
        insert into ${outboxDeliveries} (event_id, channel, target, attempts, next_attempt_at, created_at)
        select x.e, x.c, x.t, case when x.n then 1 else 0 end,
          case when x.n then now() + ${ms(claim.leaseMs)} else now() end, now()
        from json_to_recordset(${JSON.stringify(rows)}::json) as x(e uuid, c text, t text, n boolean)
        on conflict do nothing
        returning event_id, channel, target, attempts`)
      claimed = rowsOf(result)
        .filter((r) => Number(r.attempts) === 1)
        .map((r) => ({
          eventId: r.event_id as string,
          channel: r.channel as string,
          target: r.target as string,
        }))
    }
    await tx.execute(sql`
      update ${outboxEvents} set expanded_at = now(), lease_until = null
      where id = any(${`{${eventIds.join(',')}}`}::uuid[])`)
    return claimed
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

export type Outcome = DeliveryKey & { attempt: number; outcome: Settlement }

/** The outcome of one attempt (see `settleMany`). */
export async function settle(
  db: Db,
  d: DeliveryKey & { attempt: number },
  outcome: Settlement,
): Promise<string | undefined> {
  return (await settleMany(db, [{ ...d, outcome }])).get(deliveryKey(d))
}

export const deliveryKey = (d: DeliveryKey) => `${d.eventId} ${d.channel} ${d.target}`

/**
 * Records the outcomes of many attempts in one statement (a worker delivering thousands a second
 * cannot afford a commit each). Returns each delivery's new status by `deliveryKey`; a delivery
 * whose attempt was no longer the current one (its lease ran out and another instance took it)
 * is left as it is and absent from the answer. A retry is due again after its delay, unless its
 * deadline (`maxAgeMs` after the delivery was created) has passed: then it is dead; the last
 * attempt runs at the deadline itself.
 */
export async function settleMany(db: Db, outcomes: Outcome[]): Promise<Map<string, string>> {
  if (outcomes.length === 0) return new Map()
  const rows = outcomes.map((o) => ({
    e: o.eventId,
    c: o.channel,
    t: o.target,
    a: o.attempt,
    k: o.outcome.kind,
    err: o.outcome.kind === 'delivered' ? null : clip(o.outcome.error),
    delay: o.outcome.kind === 'retry' ? Math.max(0, Math.round(o.outcome.delayMs)) : 0,
    age: o.outcome.kind === 'retry' ? Math.max(0, Math.round(o.outcome.maxAgeMs)) : 0,
  }))
  const result = await db.execute(sql`
    with x as (
      select x.*, case when x.k = 'retry' then x.age * interval '1 millisecond' end as max_age
      from json_to_recordset(${JSON.stringify(rows)}::json)
        as x(e uuid, c text, t text, a int, k text, err text, delay double precision, age double precision)
    )
    update ${outboxDeliveries} d set
      status = case
        when x.k <> 'retry' then x.k
        when now() >= d.created_at + x.max_age then 'dead'
        else 'pending' end,
      finished_at = case when x.k <> 'retry' or now() >= d.created_at + x.max_age then now() end,
      next_attempt_at = case when x.k = 'retry'
        then least(now() + x.delay * interval '1 millisecond', d.created_at + x.max_age)
        else d.next_attempt_at end,
      last_error = x.err
    from x
    where d.event_id = x.e and d.channel = x.c and d.target = x.t
      and d.attempts = x.a and d.status = 'pending'
    returning d.event_id, d.channel, d.target, d.status`)
  const statuses = new Map<string, string>()
  for (const r of rowsOf(result)) {
    statuses.set(
      deliveryKey({
        eventId: r.event_id as string,
        channel: r.channel as string,
        target: r.target as string,
      }),
      r.status as string,
    )
  }
  return statuses
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
