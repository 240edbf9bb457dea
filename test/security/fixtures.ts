import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { asc } from 'drizzle-orm'
import type { FastifyInstance } from 'fastify'
import { parse } from 'yaml'
import type { Database } from '../../src/store/db.js'
import {
  attachments,
  auditLog,
  conversationBans,
  conversationMembers,
  conversations,
  messageReports,
  messages,
  outboxEvents,
  refreshTokens,
  users,
  webhookEndpoints,
} from '../../src/store/schema.js'
import { registerUser, type TestApp, type TestUser } from '../helpers/app.js'
import { sendFile } from '../helpers/attachments.js'
import { groupChat, removeMember, restSend } from '../helpers/ws-client.js'

/** JSON Schema as the OpenAPI and AsyncAPI documents spell it (only what these tests read). */
export interface Schema {
  type?: string | string[]
  $ref?: string
  properties?: Record<string, Schema>
  required?: string[]
  items?: Schema
  anyOf?: Schema[]
  oneOf?: Schema[]
  allOf?: Schema[]
  additionalProperties?: boolean | Schema
  patternProperties?: Record<string, Schema>
  const?: unknown
  enum?: unknown[]
  format?: string
  minLength?: number
  maxLength?: number
  minimum?: number
  maximum?: number
  maxItems?: number
  default?: unknown
  title?: string
}

export interface Operation {
  method: string
  /** As the document spells it: `/api/v1/chat/conversations/{id}`. */
  path: string
  key: string
  security?: unknown[]
  requestBody?: { content: Record<string, { schema: Schema }> }
  parameters?: { in: string; name: string; schema: Schema; required?: boolean }[]
  responses: Record<string, { content?: Record<string, { schema: Schema }> }>
}

export interface OpenApi {
  paths: Record<string, Record<string, Omit<Operation, 'method' | 'path' | 'key'>>>
  components?: { schemas?: Record<string, Schema> }
}

/** The OpenAPI document as the running app serves it, so a route added tomorrow is in it. */
export async function openApi(app: FastifyInstance): Promise<OpenApi> {
  const res = await app.inject('/openapi.json')
  if (res.statusCode !== 200) throw new Error(`/openapi.json answered ${res.statusCode}`)
  return res.json() as OpenApi
}

/** Every operation in the document, plus the HEAD twin Fastify adds to each GET. */
export function operations(doc: OpenApi, { head = false } = {}): Operation[] {
  const ops: Operation[] = []
  for (const [path, byMethod] of Object.entries(doc.paths)) {
    for (const [m, op] of Object.entries(byMethod)) {
      const method = m.toUpperCase()
      ops.push({ ...op, method, path, key: `${method} ${path}` })
      if (head && method === 'GET') ops.push({ ...op, method: 'HEAD', path, key: `HEAD ${path}` })
    }
  }
  return ops
}

/** Follows `$ref`s into `components.schemas`. */
export function resolve(doc: OpenApi, schema: Schema): Schema {
  if (!schema.$ref) return schema
  const name = schema.$ref.replace('#/components/schemas/', '')
  const target = doc.components?.schemas?.[name]
  if (!target) throw new Error(`unresolved $ref ${schema.$ref}`)
  return resolve(doc, target)
}

export interface AsyncApiChannel {
  name: string
  address: string
  parameters: string[]
}

export interface AsyncApi {
  channels: AsyncApiChannel[]
  /** Frames a client may send, by `type`, with their payload schema. */
  clientFrames: Map<string, Schema>
  /** Every payload schema in the document (client and server frames). */
  payloads: Map<string, Schema>
}

/** docs/asyncapi.yaml: generated from the frame schemas, and checked against them by test/unit/asyncapi.test.ts. */
export function asyncApi(): AsyncApi {
  const doc = parse(readFileSync(new URL('../../docs/asyncapi.yaml', import.meta.url), 'utf8')) as {
    channels: Record<string, { address: string; parameters?: Record<string, unknown> }>
    operations: Record<string, { action: string; messages: { $ref: string }[] }>
    components: { messages: Record<string, { name: string; payload: Schema }> }
  }
  const channels = Object.entries(doc.channels).map(([name, c]) => ({
    name,
    address: c.address,
    parameters: Object.keys(c.parameters ?? {}),
  }))
  const clientFrames = new Map<string, Schema>()
  for (const op of Object.values(doc.operations)) {
    // AsyncAPI 3 speaks from the server's side: it *receives* what clients send.
    if (op.action !== 'receive') continue
    for (const { $ref } of op.messages) {
      const key = $ref.split('/').at(-1) as string
      const message = doc.components.messages[key]
      if (!message) throw new Error(`unresolved ${$ref}`)
      clientFrames.set(message.name, message.payload)
    }
  }
  const payloads = new Map(Object.entries(doc.components.messages).map(([k, m]) => [k, m.payload]))
  return { channels, clientFrames, payloads }
}

/**
 * Row counts and a hash of every row of every table a request could change. Equal before and
 * after a refused request means the request changed nothing.
 */
export async function databaseDigest(database: Database) {
  const { db } = database
  const tables = {
    users: await db.select().from(users).orderBy(asc(users.id)),
    refresh_tokens: await db.select().from(refreshTokens).orderBy(asc(refreshTokens.id)),
    conversations: await db.select().from(conversations).orderBy(asc(conversations.id)),
    conversation_members: await db
      .select()
      .from(conversationMembers)
      .orderBy(asc(conversationMembers.conversationId), asc(conversationMembers.userId)),
    messages: await db.select().from(messages).orderBy(asc(messages.id)),
    attachments: await db.select().from(attachments).orderBy(asc(attachments.id)),
    message_reports: await db.select().from(messageReports).orderBy(asc(messageReports.id)),
    conversation_bans: await db
      .select()
      .from(conversationBans)
      .orderBy(asc(conversationBans.conversationId), asc(conversationBans.userId)),
    audit_log: await db.select().from(auditLog).orderBy(asc(auditLog.id)),
    webhook_endpoints: await db.select().from(webhookEndpoints).orderBy(asc(webhookEndpoints.id)),
    outbox_events: await db.select({ id: outboxEvents.id }).from(outboxEvents).orderBy(asc(outboxEvents.id)),
  }
  const counts = Object.fromEntries(Object.entries(tables).map(([k, rows]) => [k, rows.length]))
  const hash = createHash('sha256').update(JSON.stringify(tables)).digest('hex')
  return { ...counts, hash }
}

/**
 * A group with an owner, two members and a member who was removed, a direct conversation, and
 * messages: every kind of relationship a request can have to a conversation.
 */
export interface World {
  owner: TestUser
  /** A plain member: no admin rights. */
  member: TestUser
  /** Another plain member, the target of member-management routes. */
  other: TestUser
  /** Was in the group, then removed. */
  removed: TestUser
  /** Never in any of these conversations. */
  stranger: TestUser
  group: string
  /** The owner's message in the group. */
  message: string
  /** A file the owner sent to the group (before the removal). */
  attachment: string
  /** Text only members may read: if it shows up anywhere else, something leaked. */
  secret: string
  /** The last seq the removed member may see (the group's last seq at the removal). */
  removedAt: number
}

export async function buildWorld(t: TestApp): Promise<World> {
  const owner = await registerUser(t.app, 'Owner')
  const member = await registerUser(t.app, 'Member')
  const other = await registerUser(t.app, 'Other')
  const removed = await registerUser(t.app, 'Removed')
  const stranger = await registerUser(t.app, 'Stranger')
  const group = await groupChat(t.app, owner, [member, other, removed])
  const secret = `secret-${crypto.randomUUID()}`
  const message = (await restSend(t.app, owner, group, secret)).id
  const attachment = await sendFile(t, owner, group)
  const last = await restSend(t.app, removed, group, 'said while still a member')
  await removeMember(t.app, owner, group, removed)
  return { owner, member, other, removed, stranger, group, message, attachment, secret, removedAt: last.seq }
}
