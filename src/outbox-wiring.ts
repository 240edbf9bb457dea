import type { Config } from './config/config.js'
import { Outbox } from './services/outbox.js'
import type { DeliveryChannel } from './services/outbox-channel.js'
import { OutboxWorker } from './services/outbox-worker.js'
import { WebhookService } from './services/webhooks.js'
import type { Db } from './store/db.js'
import { HttpWebhookPoster } from './webhooks/http-post.js'

/**
 * The outbox, its worker and the delivery channels (docs/notifications.md). A channel is added
 * to `channels` and nothing else: the recorder asks each whether it wants an event, the worker
 * expands and delivers through each.
 */
export function outboxServices(config: Config, db: Db, more: DeliveryChannel[] = []) {
  const o = config.outbox
  const webhooks = new WebhookService(db, new HttpWebhookPoster(o.webhooks.allowPrivate), {
    envEndpoint: o.webhooks.env,
    timeoutMs: o.webhooks.timeoutMs,
    allowPrivate: o.webhooks.allowPrivate,
  })
  const channels: DeliveryChannel[] = [webhooks, ...more]
  const outbox = new Outbox(channels)
  const outboxWorker = new OutboxWorker(
    db,
    channels,
    {
      pollMs: o.pollMs,
      batchSize: o.batchSize,
      maxInFlight: o.maxInFlight,
      perTarget: o.webhooks.concurrency,
      attemptTimeoutMs: o.webhooks.timeoutMs,
      retryBaseMs: o.retryBaseMs,
      retryMaxDelayMs: o.retryMaxDelayMs,
      maxAgeMs: o.maxAgeMs,
      keepDeliveredMs: o.keepDeliveredMs,
      keepDeadMs: o.keepDeadMs,
      cleanupEveryMs: 60_000,
    },
    outbox,
  )
  return { outbox, outboxWorker, webhooks }
}
