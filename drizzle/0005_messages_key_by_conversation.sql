-- The messages key becomes (conversation_id, id), so every key of a per-conversation table holds
-- the distribution column (docs/scaling.md). Safe on a table with rows: `id` was unique, so the new
-- key is too. The index is built before the old key is dropped; the whole step holds the table's
-- lock while it builds (docs/scaling.md gives the time measured per million rows).
CREATE UNIQUE INDEX "messages_conversation_id_id_key" ON "messages" USING btree ("conversation_id","id");--> statement-breakpoint
ALTER TABLE "messages" DROP CONSTRAINT "messages_pkey";--> statement-breakpoint
ALTER TABLE "messages" ADD CONSTRAINT "messages_pkey" PRIMARY KEY USING INDEX "messages_conversation_id_id_key";--> statement-breakpoint
CREATE INDEX "messages_id_idx" ON "messages" USING btree ("id");
