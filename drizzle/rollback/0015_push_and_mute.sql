-- Reverses 0015_push_and_mute: Web Push subscriptions and their coalescing state go (browsers
-- subscribe again), and so do members' mutes.
-- Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
DROP TABLE IF EXISTS "push_coalescing";
DROP TABLE IF EXISTS "push_subscriptions";
ALTER TABLE "conversation_members" DROP COLUMN IF EXISTS "muted_until";
