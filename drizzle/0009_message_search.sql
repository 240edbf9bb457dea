-- pg_trgm ships with PostgreSQL (contrib) and with PGlite (passed to PGlite at construction, store/db.ts).
CREATE EXTENSION IF NOT EXISTS pg_trgm;--> statement-breakpoint
CREATE INDEX "messages_search_simple_idx" ON "messages" USING gin (to_tsvector('simple'::regconfig, "content")) WHERE "messages"."deleted_at" is null;--> statement-breakpoint
CREATE INDEX "messages_search_trgm_idx" ON "messages" USING gin ("content" gin_trgm_ops) WHERE "messages"."deleted_at" is null;