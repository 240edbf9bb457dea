import { once } from 'node:events'
import { createServer } from 'node:net'
import { newId } from '../../src/lib/ids.js'
import type { MessageView } from '../../src/protocol/message.js'
import { MessageWriter, type SendResult } from '../../src/services/message-writer.js'
import type { Db } from '../../src/store/db.js'
import { conversationMembers, conversations, users } from '../../src/store/schema.js'

/** A group conversation with `memberCount` fresh users, inserted directly (no API involved). */
export async function seedConversation(db: Db, memberCount = 2): Promise<{ id: string; members: string[] }> {
  const members = Array.from({ length: memberCount }, () => newId())
  await db
    .insert(users)
    .values(
      members.map((id, i) => ({ id, email: `${id}@example.com`, passwordHash: 'unused', fullName: `U${i}` })),
    )
  const id = newId()
  await db.insert(conversations).values({ id, kind: 'group', title: 'writer test', createdBy: members[0] })
  await db.insert(conversationMembers).values(
    members.map((userId, i) => ({
      conversationId: id,
      userId,
      role: i === 0 ? ('owner' as const) : ('member' as const),
    })),
  )
  return { id, members }
}

/** A writer whose commits (`onCommitted` calls) are recorded, one array of rows per transaction. */
export function startWriter(db: Db, maxBatch = 100, pipelined = false) {
  const commits: MessageView[][] = []
  const versions: Map<string, number>[] = []
  const writer = new MessageWriter(db, { maxBatch, pipelined }, (created, membersVersion) => {
    commits.push(created)
    versions.push(membersVersion)
  })
  /** Appends one send; the content doubles as its label in `batches()`. */
  const send = (
    conversationId: string,
    senderId: string,
    content: string,
    clientMsgId: string | null = null,
  ) => writer.append({ conversationId, senderId, content, clientMsgId })
  return {
    writer,
    commits,
    versions,
    send,
    /** The contents of each commit, in commit order. */
    batches: () => commits.map((rows) => rows.map((r) => r.content)),
  }
}

/** Whether a promise has settled yet, readable synchronously. */
export function track<T>(p: Promise<T>): { settled: boolean; promise: Promise<T> } {
  const state = { settled: false, promise: p }
  p.then(
    () => {
      state.settled = true
    },
    () => {
      state.settled = true
    },
  )
  return state
}

export type Sent = Promise<SendResult>

/**
 * Counts the writer's transactions: `started` so far, and the most that were open at once.
 * The database is the real one; only the calls are counted.
 */
export function countTransactions(db: Db): {
  db: Db
  stats: { started: number; open: number; maxOpen: number }
} {
  const stats = { started: 0, open: 0, maxOpen: 0 }
  const transaction = (fn: Parameters<Db['transaction']>[0]) => {
    stats.started++
    stats.open++
    stats.maxOpen = Math.max(stats.maxOpen, stats.open)
    return db.transaction(fn).finally(() => {
      stats.open--
    })
  }
  const counted = new Proxy(db, {
    get: (target, prop, receiver) =>
      prop === 'transaction' ? transaction : Reflect.get(target, prop, receiver),
  })
  return { db: counted, stats }
}

/** A local port that nothing listens on (it was free a moment ago): connecting is refused. */
export async function closedPort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  await new Promise((resolve) => server.close(resolve))
  return port
}
