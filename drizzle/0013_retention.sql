ALTER TABLE "conversations" ADD COLUMN "retention_days" integer;--> statement-breakpoint
CREATE INDEX "conversations_retention_idx" ON "conversations" USING btree ("id") WHERE "conversations"."retention_days" is not null;--> statement-breakpoint
CREATE INDEX IF NOT EXISTS "messages_live_created_idx" ON "messages" USING btree ("conversation_id","created_at") WHERE "messages"."deleted_at" is null;--> statement-breakpoint
ALTER TABLE "conversations" ADD CONSTRAINT "conversations_retention_days_check" CHECK ("conversations"."retention_days" between 1 and 36500);