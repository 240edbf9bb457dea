import { v7 } from 'uuid'

/** Time-ordered UUIDv7, made in the app because PostgreSQL 15 has no uuidv7(). */
export const newId = (): string => v7()

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i
export const isUuid = (s: string): boolean => UUID_RE.test(s)

/**
 * The fields that carry ids of our objects, in requests and frames. `client_msg_id` is not one:
 * it is the client's own token and is echoed back exactly as sent.
 */
const ID_FIELDS = new Set(['id', 'user_id', 'conversation_id', 'message_id', 'recipient_id', 'member_ids'])

const lower = (v: unknown): unknown =>
  typeof v === 'string' && isUuid(v) ? v.toLowerCase() : Array.isArray(v) ? v.map(lower) : v

/**
 * Ids are stored in canonical lower case, but UUIDs compare case-insensitively (RFC 9562), so
 * every edge (route params and bodies, socket paths and frames) lower-cases the id fields of
 * what it received: `ABC…` and `abc…` then name the same conversation on every route.
 */
export function normalizeIds<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return value
  const record = value as Record<string, unknown>
  for (const key of Object.keys(record)) {
    if (ID_FIELDS.has(key)) record[key] = lower(record[key])
  }
  return value
}

/** The same for the keys of a map keyed by id (a `sync` frame's cursors). */
export function normalizeIdKeys<V>(map: Record<string, V>): Record<string, V> {
  return Object.fromEntries(Object.entries(map).map(([k, v]) => [isUuid(k) ? k.toLowerCase() : k, v]))
}
