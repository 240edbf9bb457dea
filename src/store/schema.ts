/**
 * The database schema. It is longer than 400 lines because drizzle-kit generates migrations from
 * this one module (drizzle.config.ts) and the tables that reference users, conversations and
 * messages (members, messages, attachments, reactions, pins, blocks, reports, bans, push
 * subscriptions, changes) would, split into modules of their own, import this one while it
 * re-exports them: an import cycle that holds only while every reference stays lazy. Tables that
 * reference none of them live apart and are re-exported at the end (schema-outbox.ts).
 */
import { sql } from 'drizzle-orm'
import {
  type AnyPgColumn,
  bigint,
  boolean,
  check,
  foreignKey,
  index,
  integer,
  jsonb,
  pgTable,
  primaryKey,
  text,
  timestamp,
  uniqueIndex,
  uuid,
} from 'drizzle-orm/pg-core'
import { REPORT_REASONS, REPORT_RESOLUTIONS } from '../protocol/moderation.js'

export type { ReportReason, ReportResolution } from '../protocol/moderation.js'

// Millisecond precision: what a JS Date holds, so timestamps round-trip exactly through cursors.
const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date', precision: 3 })

export const users = pgTable(
  'users',
  {
    id: uuid('id').primaryKey(),
    email: text('email').notNull(),
    passwordHash: text('password_hash').notNull(),
    fullName: text('full_name').notNull(),
    isActive: boolean('is_active').notNull().default(true),
    /** `operator`: may use /api/v1/admin (http/authenticate.ts `requireOperator` decides). Was `is_superuser`. */
    role: text('role', { enum: ['user', 'operator'] })
      .notNull()
      .default('user'),
    /** Set while an operator has suspended the account: it cannot sign in, refresh or use a token. */
    suspendedAt: ts('suspended_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    deletedAt: ts('deleted_at'),
  },
  (t) => [
    uniqueIndex('users_email_key').on(t.email),
    // Prefix search on names uses lower(full_name) text_pattern_ops so LIKE 'abc%' is indexed.
    index('users_name_prefix_idx').on(sql`lower(${t.fullName}) text_pattern_ops`, t.id),
    index('users_email_prefix_idx').on(sql`${t.email} text_pattern_ops`, t.id),
    check('users_role_check', sql`${t.role} in ('user', 'operator')`),
  ],
)

export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    familyId: uuid('family_id').notNull(),
    tokenHash: text('token_hash').notNull(),
    expiresAt: ts('expires_at').notNull(),
    usedAt: ts('used_at'),
    revokedAt: ts('revoked_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('refresh_tokens_hash_key').on(t.tokenHash),
    index('refresh_tokens_family_idx').on(t.familyId),
    index('refresh_tokens_user_idx').on(t.userId),
  ],
)

export const conversations = pgTable(
  'conversations',
  {
    id: uuid('id').primaryKey(),
    kind: text('kind', { enum: ['direct', 'group'] }).notNull(),
    title: text('title'),
    /** `low:high` user ids of a direct conversation: the database keeps one per pair. */
    directKey: text('direct_key'),
    createdBy: uuid('created_by').references(() => users.id, { onDelete: 'set null' }),
    lastSeq: bigint('last_seq', { mode: 'number' }).notNull().default(0),
    /**
     * Bumped by every removal, under the same row lock as `seq`. Message events carry it, so a
     * socket that sees a version it does not know re-checks membership before delivering.
     */
    membersVersion: bigint('members_version', { mode: 'number' }).notNull().default(0),
    /**
     * A direct conversation whose two members block each other either way: closed to new
     * messages. Kept on the row (set under its lock with the block change, store/blocks.ts) so the
     * group commit reads it with the lock it already takes, at no extra query per message.
     */
    blocked: boolean('blocked').notNull().default(false),
    /**
     * Bumped by every change to one of its messages (edit, delete, reactions, thread summary,
     * pin), under this row's lock held to commit, like `last_seq`: once change N is committed,
     * every change below N is too. `sync` re-sends what changed after a client's position.
     */
    changeSeq: bigint('change_seq', { mode: 'number' }).notNull().default(0),
    lastActivityAt: ts('last_activity_at').notNull().defaultNow(),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    /** Messages older than this many days are expired (tombstoned); null: MESSAGE_RETENTION_DAYS applies. */
    retentionDays: integer('retention_days'),
  },
  (t) => [
    uniqueIndex('conversations_direct_key').on(t.directKey),
    check('conversations_kind_check', sql`${t.kind} in ('direct', 'group')`),
    check('conversations_retention_days_check', sql`${t.retentionDays} between 1 and 36500`),
    // The retention job walks the conversations with a setting of their own in id order
    // (when MESSAGE_RETENTION_DAYS is off), without reading the others.
    index('conversations_retention_idx').on(t.id).where(sql`${t.retentionDays} is not null`),
  ],
)

export const conversationMembers = pgTable(
  'conversation_members',
  {
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    role: text('role', { enum: ['owner', 'admin', 'member'] }).notNull(),
    lastReadSeq: bigint('last_read_seq', { mode: 'number' }).notNull().default(0),
    /** The conversation's last seq when the member joined: they are sent the messages after it. */
    joinedSeq: bigint('joined_seq', { mode: 'number' }).notNull().default(0),
    joinedAt: ts('joined_at').notNull().defaultNow(),
    /**
     * The member muted the conversation until then (no push notifications, mentions excepted);
     * null: not muted. "Until unmuted" is stored as MUTED_FOREVER (docs/notifications.md, "Mute").
     */
    mutedUntil: ts('muted_until'),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.userId] }),
    index('conversation_members_user_idx').on(t.userId),
    check('conversation_members_role_check', sql`${t.role} in ('owner', 'admin', 'member')`),
  ],
)

export const messages = pgTable(
  'messages',
  {
    /** Made by the app (UUIDv7), so unique without a key of its own: see the primary key. */
    id: uuid('id').notNull(),
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    senderId: uuid('sender_id').references(() => users.id, { onDelete: 'set null' }),
    content: text('content').notNull(),
    clientMsgId: text('client_msg_id'),
    createdAt: ts('created_at').notNull().defaultNow(),
    editedAt: ts('edited_at'),
    deletedAt: ts('deleted_at'),
    /**
     * The attachments as the message view shows them, written in the send transaction (the
     * `attachments` table stays the record of ownership and storage): reads need no join.
     */
    attachments: jsonb('attachments').$type<AttachmentMeta[]>().notNull().default([]),
    /** The message this one answers, in the same conversation (its thread's root). */
    replyToId: uuid('reply_to_id'),
    /** Members the sender mentioned (checked to be members when sent). */
    mentions: uuid('mentions').array().notNull().default(sql`'{}'::uuid[]`),
    /** `@all`: a group admin mentioned every member. */
    mentionsAll: boolean('mentions_all').notNull().default(false),
    /** Bumped by every reaction change, under the message's row lock: orders `message.reactions` events. */
    reactionsRev: integer('reactions_rev').notNull().default(0),
  },
  (t) => [
    // Led by conversation_id like every key here, so the table can be distributed by it
    // (docs/scaling.md); `id` alone is only looked up (edit, delete), through the index below.
    // Per-conversation tables (attachments, reactions…) reference a message by this key.
    primaryKey({ name: 'messages_pkey', columns: [t.conversationId, t.id] }),
    index('messages_id_idx').on(t.id),
    uniqueIndex('messages_conversation_seq_key').on(t.conversationId, t.seq),
    index('messages_replies_idx')
      .on(t.conversationId, t.replyToId, t.seq)
      .where(sql`${t.replyToId} is not null`),
    // Search (store/search.ts): words and word prefixes through full-text search with the `simple`
    // configuration, any substring of 3+ characters through pg_trgm. Deleted messages are left out.
    index('messages_search_simple_idx')
      .using('gin', sql`to_tsvector('simple'::regconfig, ${t.content})`)
      .where(sql`${t.deletedAt} is null`),
    // Trigrams led by conversation_id (btree_gin): a search scans only the searcher's
    // conversations inside the index instead of every match in the table, then rechecks those.
    // It also serves a substring test with no conversation (a multicolumn GIN index is searched by
    // any of its columns), so there is no trigram index of `content` alone: each trigram index
    // roughly halved the rate of message inserts (0017, docs/performance.md).
    index('messages_search_conv_trgm_idx')
      .using('gin', t.conversationId, sql`${t.content} gin_trgm_ops`)
      .where(sql`${t.deletedAt} is null`),
    // The sender's messages by id (UUIDv7, so in time order): the data export's keyset pages.
    index('messages_sender_idx').on(t.senderId, t.id),
    // The retention job (store/retention.ts): per conversation, the oldest messages not yet
    // tombstoned. Tombstones leave the index, so each run reads only what it expires.
    index('messages_live_created_idx').on(t.conversationId, t.createdAt).where(sql`${t.deletedAt} is null`),
    uniqueIndex('messages_client_msg_id_key')
      .on(t.conversationId, t.senderId, t.clientMsgId)
      .where(sql`${t.clientMsgId} is not null`),
  ],
)

/**
 * Where each removed member stopped: they may still be sent (over their sockets, by resume) every
 * message up to `last_seq`, which was committed while they were a member, and nothing after it.
 */
export const conversationDepartures = pgTable(
  'conversation_departures',
  {
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    lastSeq: bigint('last_seq', { mode: 'number' }).notNull(),
    membersVersion: bigint('members_version', { mode: 'number' }).notNull(),
    leftAt: ts('left_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.conversationId, t.userId] })],
)

/** A message's attachment as stored with the message (the view adds its `url`). */
export interface AttachmentMeta {
  id: string
  filename: string
  content_type: string
  size: number
  width: number | null
  height: number | null
}

/**
 * Files uploaded to object storage for a conversation. Created when the upload URL is handed
 * out; `message_id` is set by the send that uses it (once). `deleted_at` marks rows whose objects
 * are to be deleted (their message was deleted, or they were never sent within the TTL): the
 * periodic sweep deletes the objects, then the rows, so a failed delete is retried.
 */
export const attachments = pgTable(
  'attachments',
  {
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    id: uuid('id').notNull(),
    uploaderId: uuid('uploader_id').references(() => users.id, { onDelete: 'set null' }),
    filename: text('filename').notNull(),
    contentType: text('content_type').notNull(),
    size: bigint('size', { mode: 'number' }).notNull(),
    storageKey: text('storage_key').notNull(),
    thumbnailKey: text('thumbnail_key'),
    width: integer('width'),
    height: integer('height'),
    messageId: uuid('message_id'),
    createdAt: ts('created_at').notNull().defaultNow(),
    deletedAt: ts('deleted_at'),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.id] }),
    // GET /attachments/{id} finds a row by id alone; not unique, so the table can be split by conversation.
    index('attachments_id_idx').on(t.id),
    foreignKey({
      name: 'attachments_message_fk',
      columns: [t.conversationId, t.messageId],
      foreignColumns: [messages.conversationId, messages.id],
    }),
    index('attachments_message_idx').on(t.conversationId, t.messageId),
    index('attachments_uploader_idx').on(t.uploaderId),
    index('attachments_unsent_idx').on(t.createdAt).where(sql`${t.messageId} is null`),
    index('attachments_deleted_idx').on(t.deletedAt).where(sql`${t.deletedAt} is not null`),
  ],
)

/**
 * Signing keys kept by the database, so instances sharing it share them: today only the
 * development key, generated by the first instance that starts without JWT_SECRET
 * (store/signing-keys.ts). Not per-conversation data.
 */
export const signingKeys = pgTable('signing_keys', {
  name: text('name').primaryKey(),
  secret: text('secret').notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
})

/** A message's key in the per-conversation tables below: (conversation_id, message_id). */
const messageRef = (t: { conversationId: AnyPgColumn; messageId: AnyPgColumn }, name: string) =>
  foreignKey({
    name,
    columns: [t.conversationId, t.messageId],
    foreignColumns: [messages.conversationId, messages.id],
  }).onDelete('cascade')

/**
 * The summary of a thread (the replies to one root), kept by the group commit under the
 * conversation's row lock, so concurrent replies count exactly. `participants`: the first five
 * distinct repliers.
 */
export const messageThreads = pgTable(
  'message_threads',
  {
    conversationId: uuid('conversation_id').notNull(),
    messageId: uuid('message_id').notNull(),
    replyCount: integer('reply_count').notNull(),
    lastReplyAt: ts('last_reply_at').notNull(),
    participants: uuid('participants').array().notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.messageId] }),
    messageRef(t, 'message_threads_message_fk'),
  ],
)

export const messageReactions = pgTable(
  'message_reactions',
  {
    conversationId: uuid('conversation_id').notNull(),
    messageId: uuid('message_id').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    emoji: text('emoji').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.messageId, t.userId, t.emoji] }),
    messageRef(t, 'message_reactions_message_fk'),
  ],
)

/** One row per mentioned member (`@all` expands to every member at the time of sending). */
export const messageMentions = pgTable(
  'message_mentions',
  {
    conversationId: uuid('conversation_id').notNull(),
    messageId: uuid('message_id').notNull(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    createdAt: ts('created_at').notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.messageId, t.userId] }),
    messageRef(t, 'message_mentions_message_fk'),
    // GET /mentions: the user's newest first; the unread count: after the read marker.
    index('message_mentions_user_idx').on(t.userId, t.createdAt, t.messageId),
    index('message_mentions_unread_idx').on(t.userId, t.conversationId, t.seq),
  ],
)

export const messagePins = pgTable(
  'message_pins',
  {
    conversationId: uuid('conversation_id').notNull(),
    messageId: uuid('message_id').notNull(),
    pinnedBy: uuid('pinned_by').references(() => users.id, { onDelete: 'set null' }),
    pinnedAt: ts('pinned_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.messageId] }),
    messageRef(t, 'message_pins_message_fk'),
    index('message_pins_list_idx').on(t.conversationId, t.pinnedAt),
  ],
)

/**
 * Who blocks whom (docs/moderation.md). Not per-conversation data: a block is between two users.
 * `blocked_id` is indexed for "who blocks me" (a socket's presence and typing filter).
 */
export const userBlocks = pgTable(
  'user_blocks',
  {
    blockerId: uuid('blocker_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    blockedId: uuid('blocked_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.blockerId, t.blockedId] }),
    // GET /users/me/blocks pages newest first by (created_at, blocked_id).
    index('user_blocks_list_idx').on(t.blockerId, t.createdAt, t.blockedId),
    index('user_blocks_blocked_idx').on(t.blockedId),
    check('user_blocks_not_self', sql`${t.blockerId} <> ${t.blockedId}`),
  ],
)

/** A message as it was when reported: kept with the report whatever happens to the message later. */
export interface MessageSnapshot {
  seq: number
  sender_id: string | null
  content: string
  attachments: AttachmentMeta[]
  created_at: string
  edited_at: string | null
  deleted_at: string | null
}

/**
 * A member's report of a message. At most one open report per reporter and message (a partial
 * unique index); `snapshot` keeps the message as it was, so deleting or editing it loses no evidence.
 */
export const messageReports = pgTable(
  'message_reports',
  {
    conversationId: uuid('conversation_id').notNull(),
    id: uuid('id').notNull(),
    messageId: uuid('message_id').notNull(),
    reporterId: uuid('reporter_id').references(() => users.id, { onDelete: 'set null' }),
    reason: text('reason', { enum: REPORT_REASONS }).notNull(),
    note: text('note'),
    snapshot: jsonb('snapshot').$type<MessageSnapshot>().notNull(),
    status: text('status', { enum: ['open', 'resolved'] })
      .notNull()
      .default('open'),
    resolution: text('resolution', { enum: REPORT_RESOLUTIONS }),
    resolvedBy: uuid('resolved_by'),
    resolvedAt: ts('resolved_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.id] }),
    messageRef(t, 'message_reports_message_fk'),
    // Operators resolve a report by its id alone; not unique, so the table can be split by conversation.
    index('message_reports_id_idx').on(t.id),
    uniqueIndex('message_reports_open_key')
      .on(t.conversationId, t.messageId, t.reporterId)
      .where(sql`${t.status} = 'open'`),
    // The admin list: newest first (ids are UUIDv7), by status.
    index('message_reports_status_idx').on(t.status, t.id),
    check('message_reports_status_check', sql`${t.status} in ('open', 'resolved')`),
  ],
)

/** Who may not be (re-)added to a group until unbanned. Banning a member removes them too. */
export const conversationBans = pgTable(
  'conversation_bans',
  {
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    bannedBy: uuid('banned_by').references(() => users.id, { onDelete: 'set null' }),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.conversationId, t.userId] })],
)

/**
 * Every moderation action, written in the action's transaction. Append-only: a trigger refuses
 * UPDATE, DELETE and TRUNCATE (drizzle/0012_moderation.sql). No foreign keys, so nothing can
 * cascade into it; not per-conversation (the conversation, when there is one, is in `details`).
 */
export const auditLog = pgTable(
  'audit_log',
  {
    id: uuid('id').primaryKey(),
    actorId: uuid('actor_id').notNull(),
    action: text('action').notNull(),
    targetType: text('target_type').notNull(),
    targetId: uuid('target_id').notNull(),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('audit_log_action_idx').on(t.action, t.id),
    index('audit_log_target_idx').on(t.targetId, t.id),
    index('audit_log_actor_idx').on(t.actorId, t.id),
  ],
)

/**
 * Web Push subscriptions (the browser's `PushSubscription`), one per browser endpoint: a browser
 * registered again by another account moves to that account. Not per-conversation data.
 */
export const pushSubscriptions = pgTable(
  'push_subscriptions',
  {
    id: uuid('id').primaryKey(),
    userId: uuid('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    endpoint: text('endpoint').notNull(),
    /** The browser's P-256 public key and auth secret (base64url), for RFC 8291 encryption. */
    p256dh: text('p256dh').notNull(),
    auth: text('auth').notNull(),
    /** The browser's `expirationTime`, when it gave one: not pushed to after it. */
    expiresAt: ts('expires_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('push_subscriptions_endpoint_key').on(t.endpoint),
    index('push_subscriptions_user_idx').on(t.userId),
  ],
)

/**
 * Coalescing state of one subscription for one conversation (services/push.ts): the highest seq
 * a confirmed push covered and when it went out, and the highest seq any delivery has claimed
 * (the one that will send the next push of a burst). Keyed by subscription first; it holds no
 * conversation data, and goes with the subscription.
 */
export const pushCoalescing = pgTable(
  'push_coalescing',
  {
    subscriptionId: uuid('subscription_id')
      .notNull()
      .references(() => pushSubscriptions.id, { onDelete: 'cascade' }),
    conversationId: uuid('conversation_id')
      .notNull()
      .references(() => conversations.id, { onDelete: 'cascade' }),
    sentSeq: bigint('sent_seq', { mode: 'number' }).notNull().default(0),
    /** When the current window started (a push was started); null: none yet. */
    windowAt: ts('window_at'),
    ownerSeq: bigint('owner_seq', { mode: 'number' }).notNull().default(0),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.subscriptionId] }),
    // Deleting a subscription deletes its rows through this.
    index('push_coalescing_subscription_idx').on(t.subscriptionId),
  ],
)

/**
 * Each message's latest change: the conversation's `change_seq` of the last change to it (a
 * message never changed has no row). A table apart from `messages`, so a reaction's update of the
 * message row stays HOT (no index of `messages` is touched) and the group commit can record a
 * root's thread change without locking the root's row (which a reaction may hold while it waits
 * for the conversation's row: the other order would deadlock).
 */
export const messageChanges = pgTable(
  'message_changes',
  {
    conversationId: uuid('conversation_id').notNull(),
    messageId: uuid('message_id').notNull(),
    changeSeq: bigint('change_seq', { mode: 'number' }).notNull(),
  },
  (t) => [
    primaryKey({ columns: [t.conversationId, t.messageId] }),
    messageRef(t, 'message_changes_message_fk'),
    // `sync`: the messages changed after a client's position, in change order.
    uniqueIndex('message_changes_seq_key').on(t.conversationId, t.changeSeq),
  ],
)

export type UserRow = typeof users.$inferSelect
export type ConversationRow = typeof conversations.$inferSelect
export type MemberRow = typeof conversationMembers.$inferSelect
export type MessageRow = typeof messages.$inferSelect
export type AttachmentRow = typeof attachments.$inferSelect
export type ReportRow = typeof messageReports.$inferSelect
export type AuditRow = typeof auditLog.$inferSelect

// The outbox and webhook endpoints (issue 16) live in their own file; re-exported so every import of the schema sees them.
export * from './schema-outbox.js'
