import { desc, eq } from 'drizzle-orm'
import type { Db } from './db.js'
import { type WebhookEndpointRow, webhookEndpoints } from './schema.js'

/** Webhook endpoints registered by operators. At most a few dozen: read whole, newest first. */
export function listEndpoints(db: Db): Promise<WebhookEndpointRow[]> {
  return db
    .select()
    .from(webhookEndpoints)
    .orderBy(desc(webhookEndpoints.createdAt), desc(webhookEndpoints.id))
}

export async function findEndpoint(db: Db, id: string): Promise<WebhookEndpointRow | undefined> {
  const [row] = await db.select().from(webhookEndpoints).where(eq(webhookEndpoints.id, id))
  return row
}

export async function countEndpoints(db: Db): Promise<number> {
  return (await db.$count(webhookEndpoints)) as number
}

export async function insertEndpoint(
  db: Db,
  row: { id: string; url: string; events: string[]; secret: string; description: string; createdBy: string },
): Promise<WebhookEndpointRow> {
  const [created] = await db.insert(webhookEndpoints).values(row).returning()
  return created as WebhookEndpointRow
}

/** True when it existed. Its pending deliveries end as `gone` at their next attempt. */
export async function deleteEndpoint(db: Db, id: string): Promise<boolean> {
  const deleted = await db
    .delete(webhookEndpoints)
    .where(eq(webhookEndpoints.id, id))
    .returning({ id: webhookEndpoints.id })
  return deleted.length > 0
}
