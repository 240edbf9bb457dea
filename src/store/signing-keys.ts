import { eq, sql } from 'drizzle-orm'
import type { Db } from './db.js'
import { signingKeys } from './schema.js'

/** Arbitrary constant naming the advisory lock under which the development key is created. */
const SIGNING_KEY_LOCK_ID = 7_310_442_016

const DEVELOPMENT = 'development'

/**
 * The development signing secret every instance on this database uses: the first caller stores
 * `candidate`, every later (or concurrent) caller gets the stored one. Under a transaction-scoped
 * advisory lock, like migrations, and with ON CONFLICT DO NOTHING besides, so instances starting
 * at the same instant still end up with one key (on postgres.js and PGlite alike).
 */
export function developmentSigningSecret(db: Db, candidate: string): Promise<string> {
  return sharedSecret(db, DEVELOPMENT, candidate)
}

/**
 * The secret stored under `name`, storing `candidate` when there is none yet: the same
 * first-caller-wins rule for any key every instance must share (the development JWT key, the
 * generated VAPID key pair).
 */
export async function sharedSecret(db: Db, name: string, candidate: string): Promise<string> {
  return db.transaction(async (tx) => {
    await tx.execute(sql`select pg_advisory_xact_lock(${SIGNING_KEY_LOCK_ID})`)
    await tx.insert(signingKeys).values({ name, secret: candidate }).onConflictDoNothing()
    const [row] = await tx
      .select({ secret: signingKeys.secret })
      .from(signingKeys)
      .where(eq(signingKeys.name, name))
    if (!row) throw new Error(`${name} key missing right after its insert`)
    return row.secret
  })
}
