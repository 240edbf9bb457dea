-- Reverses 0012_moderation: reports, bans and the audit log go (with their rows); operators become
-- superusers again. Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
DROP TABLE IF EXISTS "audit_log";
DROP FUNCTION IF EXISTS "audit_log_append_only"();
DROP TABLE IF EXISTS "message_reports";
DROP TABLE IF EXISTS "conversation_bans";
ALTER TABLE "users" ADD COLUMN "is_superuser" boolean DEFAULT false NOT NULL;
UPDATE "users" SET "is_superuser" = true WHERE "role" = 'operator';
ALTER TABLE "users" DROP CONSTRAINT IF EXISTS "users_role_check";
ALTER TABLE "users" DROP COLUMN "role";
ALTER TABLE "users" DROP COLUMN "suspended_at";
