-- Reverses 0013_retention: per-conversation retention settings are lost (messages already expired
-- stay tombstones). Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
ALTER TABLE "conversations" DROP CONSTRAINT IF EXISTS "conversations_retention_days_check";
DROP INDEX IF EXISTS "messages_live_created_idx";
DROP INDEX IF EXISTS "conversations_retention_idx";
ALTER TABLE "conversations" DROP COLUMN IF EXISTS "retention_days";
