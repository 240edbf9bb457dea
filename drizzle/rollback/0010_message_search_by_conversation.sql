-- Reverses 0010_message_search_by_conversation (the extension stays: other objects may use it).
-- Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
DROP INDEX IF EXISTS "messages_search_conv_trgm_idx";
