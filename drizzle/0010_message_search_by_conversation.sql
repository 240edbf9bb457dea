-- btree_gin (contrib; passed to PGlite at construction, store/db.ts) lets a GIN index lead with conversation_id.
CREATE EXTENSION IF NOT EXISTS btree_gin;--> statement-breakpoint
CREATE INDEX "messages_search_conv_trgm_idx" ON "messages" USING gin ("conversation_id","content" gin_trgm_ops) WHERE "messages"."deleted_at" is null;