import type { AccessTokens } from '../auth/jwt.js'
import type { TicketStore } from '../auth/tickets.js'
import type { Config } from '../config/config.js'
import type { Metrics } from '../observability/metrics.js'
import type { Database } from '../store/db.js'
import type { AttachmentService } from './attachments.js'
import type { AuthService } from './auth.js'
import type { BanService } from './bans.js'
import type { BlockService } from './blocks.js'
import type { ConversationService } from './conversations.js'
import type { ExportService } from './export.js'
import type { LoginThrottle } from './login-throttle.js'
import type { MessageService } from './messages.js'
import type { ModerationService } from './moderation.js'
import type { SignedObjectServer } from './object-storage.js'
import type { Outbox } from './outbox.js'
import type { OutboxWorker } from './outbox-worker.js'
import type { PinService } from './pins.js'
import type { Broker, ConnectionLeases, RateLimiter } from './ports.js'
import type { PresenceService } from './presence.js'
import type { PushSubscriptionService } from './push-subscriptions.js'
import type { ReactionService } from './reactions.js'
import type { ReportService } from './reports.js'
import type { RetentionService } from './retention.js'
import type { SearchService } from './search.js'
import type { ThreadService } from './threads.js'
import type { UserService } from './users.js'
import type { WebhookService } from './webhooks.js'

/**
 * Everything the transports (http/, ws/) use, built once by `wiring.ts`. Declared here so that
 * routes and the gateway depend on services, never on the file that assembles them.
 */
export interface Services {
  config: Config
  /** For readiness checks only; transports never query it. */
  database: Pick<Database, 'ping'>
  broker: Broker
  metrics: Metrics
  tokens: AccessTokens
  users: UserService
  auth: AuthService
  conversations: ConversationService
  messages: MessageService
  attachments: AttachmentService
  /** The local disk storage's own URL handler; undefined when the storage serves its URLs itself (S3). */
  objectServer: SignedObjectServer | undefined
  reactions: ReactionService
  pins: PinService
  threads: ThreadService
  /** Per-conversation retention and the job that expires messages (run by `wiring.ts` on a timer). */
  retention: RetentionService
  search: SearchService
  presence: PresenceService
  blocks: BlockService
  exports: ExportService
  limiter: RateLimiter
  loginThrottle: LoginThrottle
  tickets: TicketStore
  /** The per-user socket limit across instances. */
  connectionLeases: ConnectionLeases
  /** Reports, operators' actions on accounts and messages, the audit log (docs/moderation.md). */
  reports: ReportService
  moderation: ModerationService
  bans: BanService
  /** Records events for delivery outside (issue 16); the app starts and stops the worker. */
  outbox: Outbox
  outboxWorker: OutboxWorker
  webhooks: WebhookService
  /** Web Push subscriptions and the VAPID key pair (the outbox's `push` channel: services/push.ts). */
  push: PushSubscriptionService
}
