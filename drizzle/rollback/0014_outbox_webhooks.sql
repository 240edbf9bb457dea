-- Reverses 0014_outbox_webhooks: drops the outbox and the webhook endpoints (undelivered events
-- and registered endpoints are lost; nothing else refers to them).
-- Run by hand (psql -1 -f), then delete its row from drizzle.__drizzle_migrations (the last one).
DROP TABLE IF EXISTS "outbox_deliveries";
DROP TABLE IF EXISTS "outbox_events";
DROP TABLE IF EXISTS "webhook_endpoints";
