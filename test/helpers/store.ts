import { randomBytes } from 'node:crypto'
import { afterAll, beforeAll } from 'vitest'
import { AppError } from '../../src/errors.js'
import { newId } from '../../src/lib/ids.js'
import { insertConversation } from '../../src/store/conversations.js'
import type { Database, Db } from '../../src/store/db.js'
import type { Role } from '../../src/store/members.js'
import {
  type Outcome,
  type SendRequest,
  type StoredMessage,
  storeBatch,
} from '../../src/store/message-batch.js'
import type { MessageRow, UserRow } from '../../src/store/schema.js'
import { insertUser } from '../../src/store/users.js'
import { type Driver, openTestDatabase } from './app.js'

/**
 * One migrated database of `driver` for the calling describe block, opened before its tests and
 * closed after them: PGlite takes about a second to start, so a file shares one per driver and
 * each test makes its own users and conversations instead of starting from an empty database.
 */
export function useStore(driver: Driver): { readonly db: Db } {
  let database: Database | undefined
  beforeAll(async () => {
    database = await openTestDatabase(driver)
  })
  afterAll(async () => {
    await database?.close()
  })
  return {
    get db(): Db {
      if (!database) throw new Error('the store database is not open yet')
      return database.db
    },
  }
}

let counter = 0
/** A token no other test in the run shares, lower-case letters only (it survives `lower()`). */
export function uniqueWord(): string {
  counter++
  const letters = (n: number) =>
    n
      .toString(26)
      .split('')
      .map((d) => String.fromCharCode(97 + Number.parseInt(d, 26)))
      .join('')
  return `q${letters(process.pid)}z${letters(counter)}z${letters(randomBytes(3).readUIntBE(0, 3))}`
}

/** An account with a unique email; the password hash is never checked by the store. */
export function makeUser(
  db: Db,
  fullName = 'Store User',
  email = `${uniqueWord()}@example.com`,
  id = newId(),
) {
  return insertUser(db, { id, email, passwordHash: 'hash', fullName })
}

/** `N` copies of `T`, so destructuring `makeUsers(db, 3)` gives three defined rows. */
type Tuple<T, N extends number, R extends T[] = []> = R['length'] extends N ? R : Tuple<T, N, [...R, T]>

/** `n` accounts, in creation order. */
export async function makeUsers<const N extends number>(db: Db, n: N): Promise<Tuple<UserRow, N>> {
  const made: UserRow[] = []
  for (let i = 0; i < n; i++) made.push(await makeUser(db, `Member ${i}`))
  return made as Tuple<UserRow, N>
}

/** A group owned by `owner` with `others` as plain members; returns its id. */
export async function makeGroup(db: Db, owner: UserRow, others: UserRow[] = [], title = 'Group') {
  const id = newId()
  const initial: { userId: string; role: Role }[] = [
    { userId: owner.id, role: 'owner' },
    ...others.map((u) => ({ userId: u.id, role: 'member' as const })),
  ]
  const created = await insertConversation(db, { id, kind: 'group', title, createdBy: owner.id }, initial)
  if (!created) throw new Error('a group insert reported a direct-key conflict')
  return id
}

/** One send request as the message writer makes it. */
export const req = (senderId: string, conversationId: string, content: string, clientMsgId?: string) => ({
  senderId,
  conversationId,
  content,
  clientMsgId: clientMsgId ?? null,
})

/** Commits one batch the way the message writer does: `storeBatch` inside its own transaction. */
export const commit = (db: Db, reqs: SendRequest[]) => db.transaction((tx) => storeBatch(tx, reqs))

/** The outcome as a stored message, failing the test when it is an error. */
export function stored(o: Outcome | undefined): StoredMessage {
  if (o === undefined || o instanceof AppError) throw new Error(`expected a stored message, got ${String(o)}`)
  return o
}

/** Sends `n` messages from `sender`, one batch each (as separate sends arrive), and returns them. */
export async function sendMany(db: Db, sender: UserRow, conversationId: string, n: number) {
  const sent: MessageRow[] = []
  for (let i = 1; i <= n; i++) {
    const { outcomes } = await commit(db, [req(sender.id, conversationId, `message ${i}`)])
    sent.push(stored(outcomes[0]).message)
  }
  return sent
}

export const seqs = (rows: { seq: number }[]): number[] => rows.map((r) => r.seq)
