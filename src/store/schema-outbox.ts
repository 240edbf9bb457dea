import { sql } from 'drizzle-orm'
import { check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core'

// Millisecond precision, as in schema.ts.
const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date', precision: 3 })

/**
 * The transactional outbox (issue 16, docs/notifications.md): one row per event that leaves the
 * service, written in the transaction of the change that causes it. A worker expands each event
 * once into `outbox_deliveries` (one row per channel and target). One queue for the whole
 * service, not per-conversation data: the conversation an event is about is kept as
 * `about_conversation`, not `conversation_id`, and is no key.
 */
export const outboxEvents = pgTable(
  'outbox_events',
  {
    id: uuid('id').primaryKey(),
    type: text('type').notNull(),
    aboutConversation: uuid('about_conversation'),
    data: jsonb('data').notNull(),
    occurredAt: ts('occurred_at').notNull(),
    /** Set once its delivery rows exist; until then a worker holding `lease_until` expands it. */
    expandedAt: ts('expanded_at'),
    leaseUntil: ts('lease_until'),
  },
  (t) => [index('outbox_events_unexpanded_idx').on(t.id).where(sql`expanded_at is null`)],
)

/** One event to one target of one channel: retried, delivered or dead on its own. */
export const outboxDeliveries = pgTable(
  'outbox_deliveries',
  {
    eventId: uuid('event_id')
      .notNull()
      .references(() => outboxEvents.id, { onDelete: 'cascade' }),
    channel: text('channel').notNull(),
    target: text('target').notNull(),
    /** pending | delivered | dead | gone (the target no longer exists). */
    status: text('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    /** Due time while pending; while an attempt runs, the end of its lease. */
    nextAttemptAt: ts('next_attempt_at').notNull(),
    createdAt: ts('created_at').notNull(),
    finishedAt: ts('finished_at'),
    lastError: text('last_error'),
  },
  (t) => [
    primaryKey({ columns: [t.eventId, t.channel, t.target] }),
    index('outbox_deliveries_due_idx').on(t.nextAttemptAt).where(sql`status = 'pending'`),
    index('outbox_deliveries_finished_idx').on(t.finishedAt).where(sql`status <> 'pending'`),
    check('outbox_deliveries_status_check', sql`status in ('pending', 'delivered', 'dead', 'gone')`),
  ],
)

/** Webhook endpoints registered by operators (`/api/v1/admin/webhooks`). */
export const webhookEndpoints = pgTable('webhook_endpoints', {
  id: uuid('id').primaryKey(),
  url: text('url').notNull(),
  /** Event types it receives; empty: all of them. */
  events: text('events').array().notNull().default(sql`'{}'::text[]`),
  /** `whsec_…`; kept as given, since signing needs the key itself. */
  secret: text('secret').notNull(),
  description: text('description').notNull().default(''),
  /** The operator who registered it (no foreign key: this file stands apart from schema.ts). */
  createdBy: uuid('created_by'),
  createdAt: ts('created_at').notNull().defaultNow(),
})

export type OutboxEventRow = typeof outboxEvents.$inferSelect
export type WebhookEndpointRow = typeof webhookEndpoints.$inferSelect
