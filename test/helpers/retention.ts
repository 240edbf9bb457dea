import { eq } from 'drizzle-orm'
import { RetentionService } from '../../src/services/retention.js'
import { messages } from '../../src/store/schema.js'
import type { TestApp } from './app.js'

/** A day in milliseconds: the retention tests move the job's clock by days. */
export const DAY = 86_400_000

/** A retention job over the test app's database and broker, with its own settings and clock. */
export function retentionJob(
  t: TestApp,
  defaultDays: number | null,
  now: () => Date,
  batchSize = 100,
  onExpired: (n: number) => void = () => undefined,
  db = t.database.db,
) {
  return new RetentionService(
    db,
    t.services.broker,
    t.services.conversations,
    { defaultDays, batchSize },
    (refs) => t.services.attachments.remove(refs),
    now,
    onExpired,
  )
}

/** A message's stored content, read straight from the table. */
export async function contentOf(t: TestApp, id: string): Promise<string | undefined> {
  const [row] = await t.database.db
    .select({ content: messages.content })
    .from(messages)
    .where(eq(messages.id, id))
  return row?.content
}
