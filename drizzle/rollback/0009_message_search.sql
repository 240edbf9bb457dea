-- Reverses 0009_message_search (the extension stays: other objects may use it).
-- Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
DROP INDEX IF EXISTS "messages_search_trgm_idx";
DROP INDEX IF EXISTS "messages_search_simple_idx";
