-- Reverses 0017_drop_plain_trigram_index: builds the trigram index of `content` alone again (a
-- scan of the whole table; on a large one, build it beforehand with CREATE INDEX CONCURRENTLY).
-- Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
CREATE INDEX IF NOT EXISTS "messages_search_trgm_idx" ON "messages" USING gin ("content" gin_trgm_ops) WHERE "messages"."deleted_at" is null;
