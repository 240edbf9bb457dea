import type { CursorStore, OutboxEntry, OutboxStore, StorageLike, TokenStore, Tokens } from './types.js'

/**
 * The storage adapters that come with the SDK: in memory (the default; gone with the page or
 * process) and `localStorage` (browsers; survives reloads). Apps with other storage (IndexedDB,
 * SQLite, a file) implement the three small interfaces in types.ts themselves.
 */

export class MemoryTokenStore implements TokenStore {
  private tokens: Tokens | undefined
  get(): Tokens | undefined {
    return this.tokens
  }
  set(tokens: Tokens | undefined): void {
    this.tokens = tokens
  }
}

export class MemoryCursorStore implements CursorStore {
  private readonly byUser = new Map<string, Map<string, number>>()
  private readonly changesByUser = new Map<string, Map<string, number>>()
  load(userId: string): Record<string, number> {
    return Object.fromEntries(this.byUser.get(userId) ?? [])
  }
  set(userId: string, conversationId: string, seq: number): void {
    put(this.byUser, userId, conversationId, seq)
  }
  remove(userId: string, conversationId: string): void {
    this.byUser.get(userId)?.delete(conversationId)
    this.changesByUser.get(userId)?.delete(conversationId)
  }
  loadChanges(userId: string): Record<string, number> {
    return Object.fromEntries(this.changesByUser.get(userId) ?? [])
  }
  setChange(userId: string, conversationId: string, changeSeq: number): void {
    put(this.changesByUser, userId, conversationId, changeSeq)
  }
}

function put(byUser: Map<string, Map<string, number>>, userId: string, key: string, value: number): void {
  let values = byUser.get(userId)
  if (!values) {
    values = new Map()
    byUser.set(userId, values)
  }
  values.set(key, value)
}

export class MemoryOutboxStore implements OutboxStore {
  private readonly byUser = new Map<string, Map<string, OutboxEntry>>()
  load(userId: string): OutboxEntry[] {
    return [...(this.byUser.get(userId)?.values() ?? [])].map((e) => structuredClone(e))
  }
  put(userId: string, entry: OutboxEntry): void {
    let entries = this.byUser.get(userId)
    if (!entries) {
      entries = new Map()
      this.byUser.set(userId, entries)
    }
    entries.set(entry.id, structuredClone(entry))
  }
  remove(userId: string, id: string): void {
    this.byUser.get(userId)?.delete(id)
  }
}

function defaultStorage(): StorageLike {
  const storage = (globalThis as { localStorage?: StorageLike }).localStorage
  if (!storage) throw new Error('localStorage is not available here; pass a Storage to the adapter')
  return storage
}

function readJson<T>(storage: StorageLike, key: string, fallback: T): T {
  const text = storage.getItem(key)
  if (text === null) return fallback
  try {
    return JSON.parse(text) as T
  } catch {
    // A corrupt entry (hand-edited, truncated) is treated as absent rather than failing forever.
    return fallback
  }
}

/** Tokens in localStorage under one key: tabs of the same origin share the session. */
export class LocalStorageTokenStore implements TokenStore {
  constructor(
    private readonly key = 'chat-api:tokens',
    private readonly storage: StorageLike = defaultStorage(),
  ) {}
  get(): Tokens | undefined {
    return readJson<Tokens | undefined>(this.storage, this.key, undefined)
  }
  set(tokens: Tokens | undefined): void {
    if (tokens) this.storage.setItem(this.key, JSON.stringify(tokens))
    else this.storage.removeItem(this.key)
  }
}

/** Cursors in localStorage, one key per user (`<prefix>:<userId>`). */
export class LocalStorageCursorStore implements CursorStore {
  constructor(
    private readonly prefix = 'chat-api:cursors',
    private readonly storage: StorageLike = defaultStorage(),
  ) {}
  load(userId: string): Record<string, number> {
    return readJson<Record<string, number>>(this.storage, `${this.prefix}:${userId}`, {})
  }
  set(userId: string, conversationId: string, seq: number): void {
    const cursors = this.load(userId)
    cursors[conversationId] = seq
    this.storage.setItem(`${this.prefix}:${userId}`, JSON.stringify(cursors))
  }
  remove(userId: string, conversationId: string): void {
    const cursors = this.load(userId)
    delete cursors[conversationId]
    this.storage.setItem(`${this.prefix}:${userId}`, JSON.stringify(cursors))
    const changes = this.loadChanges(userId)
    if (!(conversationId in changes)) return
    delete changes[conversationId]
    this.storage.setItem(`${this.prefix}:${userId}:changes`, JSON.stringify(changes))
  }
  /** Change positions under `<prefix>:<userId>:changes`. */
  loadChanges(userId: string): Record<string, number> {
    return readJson<Record<string, number>>(this.storage, `${this.prefix}:${userId}:changes`, {})
  }
  setChange(userId: string, conversationId: string, changeSeq: number): void {
    const changes = this.loadChanges(userId)
    changes[conversationId] = changeSeq
    this.storage.setItem(`${this.prefix}:${userId}:changes`, JSON.stringify(changes))
  }
}

/** The outbox in localStorage, one key per user, entries in composition order. */
export class LocalStorageOutboxStore implements OutboxStore {
  constructor(
    private readonly prefix = 'chat-api:outbox',
    private readonly storage: StorageLike = defaultStorage(),
  ) {}
  load(userId: string): OutboxEntry[] {
    return readJson<OutboxEntry[]>(this.storage, `${this.prefix}:${userId}`, [])
  }
  put(userId: string, entry: OutboxEntry): void {
    const entries = this.load(userId)
    const i = entries.findIndex((e) => e.id === entry.id)
    if (i >= 0) entries[i] = entry
    else entries.push(entry)
    this.storage.setItem(`${this.prefix}:${userId}`, JSON.stringify(entries))
  }
  remove(userId: string, id: string): void {
    const entries = this.load(userId).filter((e) => e.id !== id)
    if (entries.length > 0) this.storage.setItem(`${this.prefix}:${userId}`, JSON.stringify(entries))
    else this.storage.removeItem(`${this.prefix}:${userId}`)
  }
}
