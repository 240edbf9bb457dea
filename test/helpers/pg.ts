import { randomBytes } from 'node:crypto'
import postgres from 'postgres'

/** The server tests create their databases on (trust auth, user postgres, as on CI). */
export const adminUrl = (): string =>
  process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres'

/** A fresh, empty database for one test file; `drop` removes it. */
export async function createTestDatabase(): Promise<{ url: string; drop: () => Promise<void> }> {
  const name = `chat_test_${randomBytes(6).toString('hex')}`
  const admin = postgres(adminUrl(), { max: 1, onnotice: () => {} })
  await admin.unsafe(`create database ${name}`)
  await admin.end()
  const url = new URL(adminUrl())
  url.pathname = `/${name}`
  return {
    url: url.toString(),
    drop: async () => {
      const a = postgres(adminUrl(), { max: 1, onnotice: () => {} })
      await a.unsafe(`drop database if exists ${name} with (force)`)
      await a.end()
    },
  }
}

/**
 * Holds conversation rows locked (`SELECT … FOR UPDATE`) from a connection of its own, as another
 * instance's transaction would: a writer batch touching them waits until `release()`.
 */
export async function lockConversations(
  url: string,
  ids: string[],
): Promise<{ release: () => Promise<void> }> {
  const sql = postgres(url, { max: 1, onnotice: () => {} })
  let locked!: () => void
  let release!: () => void
  const isLocked = new Promise<void>((r) => {
    locked = r
  })
  const released = new Promise<void>((r) => {
    release = r
  })
  const done = sql.begin(async (tx) => {
    await tx`select id from conversations where id = any(${ids}::uuid[]) order by id for update`
    locked()
    await released
  })
  await Promise.race([isLocked, done])
  let ended: Promise<void> | undefined
  return {
    // Idempotent: a test's finally may release a lock its body already released.
    release: () => {
      release()
      ended ??= done.then(() => sql.end())
      return ended
    },
  }
}
