import { sql } from 'drizzle-orm'
import {
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
    isSuperuser: boolean('is_superuser').notNull().default(false),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    deletedAt: ts('deleted_at'),
  },
  (t) => [
    uniqueIndex('users_email_key').on(t.email),
    // Prefix search on names uses lower(full_name) text_pattern_ops so LIKE 'abc%' is indexed.
    index('users_name_prefix_idx').on(sql`lower(${t.fullName}) text_pattern_ops`, t.id),
    index('users_email_prefix_idx').on(sql`${t.email} text_pattern_ops`, t.id),
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
    lastActivityAt: ts('last_activity_at').notNull().defaultNow(),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    uniqueIndex('conversations_direct_key').on(t.directKey),
    check('conversations_kind_check', sql`${t.kind} in ('direct', 'group')`),
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
  },
  (t) => [
    // Led by conversation_id like every key here, so the table can be distributed by it
    // (docs/scaling.md); `id` alone is only looked up (edit, delete), through the index below.
    // Per-conversation tables (attachments, reactions…) reference a message by this key.
    primaryKey({ name: 'messages_pkey', columns: [t.conversationId, t.id] }),
    index('messages_id_idx').on(t.id),
    uniqueIndex('messages_conversation_seq_key').on(t.conversationId, t.seq),
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

export type UserRow = typeof users.$inferSelect
export type ConversationRow = typeof conversations.$inferSelect
export type MemberRow = typeof conversationMembers.$inferSelect
export type MessageRow = typeof messages.$inferSelect
export type AttachmentRow = typeof attachments.$inferSelect
