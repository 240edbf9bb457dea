-- Reverses 0011_blocks_export: drops what it added, leaving every earlier row as it was.
-- Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
DROP INDEX IF EXISTS "messages_sender_idx";
DROP TABLE IF EXISTS "user_blocks";
ALTER TABLE "conversations" DROP COLUMN IF EXISTS "blocked";
