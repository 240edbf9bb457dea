-- Reverses 0008_rich_messages: drops what it added, leaving every earlier row as it was.
-- Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
DROP TABLE IF EXISTS "message_pins";
DROP TABLE IF EXISTS "message_mentions";
DROP TABLE IF EXISTS "message_reactions";
DROP TABLE IF EXISTS "message_threads";
DROP INDEX IF EXISTS "messages_replies_idx";
ALTER TABLE "messages" DROP COLUMN IF EXISTS "reactions_rev";
ALTER TABLE "messages" DROP COLUMN IF EXISTS "mentions_all";
ALTER TABLE "messages" DROP COLUMN IF EXISTS "mentions";
ALTER TABLE "messages" DROP COLUMN IF EXISTS "reply_to_id";
