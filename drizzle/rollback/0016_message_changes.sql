-- Reverses 0016_message_changes: the change counter and each message's latest change. Nothing
-- else refers to them; clients resume as before (`sync` without `changes`).
-- Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
DROP TABLE IF EXISTS "message_changes";
ALTER TABLE "conversations" DROP COLUMN IF EXISTS "change_seq";
