/**
 * Every setting the service reads, with its default. `.env.example` documents the same list;
 * `test/unit/config.test.ts` fails when the two drift apart.
 */
export type Kind = 'string' | 'int' | 'bool' | 'list'

export interface Spec {
  kind: Kind
  default?: string
  min?: number
  max?: number
  oneOf?: readonly string[]
}

/** The default ATTACHMENT_CONTENT_TYPES: images, PDF, plain text, office documents, audio, video. */
const DEFAULT_CONTENT_TYPES = [
  'image/png',
  'image/jpeg',
  'image/gif',
  'image/webp',
  'application/pdf',
  'text/plain',
  'application/msword',
  'application/vnd.openxmlformats-officedocument.wordprocessingml.document',
  'application/vnd.ms-excel',
  'application/vnd.openxmlformats-officedocument.spreadsheetml.sheet',
  'application/vnd.ms-powerpoint',
  'application/vnd.openxmlformats-officedocument.presentationml.presentation',
  'application/vnd.oasis.opendocument.text',
  'application/vnd.oasis.opendocument.spreadsheet',
  'application/vnd.oasis.opendocument.presentation',
  'audio/mpeg',
  'audio/ogg',
  'audio/wav',
  'audio/webm',
  'audio/mp4',
  'video/mp4',
  'video/webm',
  'video/quicktime',
]

export const SETTINGS = {
  NODE_ENV: { kind: 'string', default: 'development', oneOf: ['development', 'production', 'test'] },
  HOST: { kind: 'string', default: '0.0.0.0' },
  PORT: { kind: 'int', default: '8000', min: 0, max: 65535 },
  SHUTDOWN_TIMEOUT_MS: { kind: 'int', default: '10000', min: 100, max: 600000 },
  LOG_LEVEL: {
    kind: 'string',
    default: 'info',
    oneOf: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'],
  },
  DATABASE_URL: { kind: 'string' },
  DATABASE_POOL_SIZE: { kind: 'int', default: '10', min: 1, max: 200 },
  DATABASE_READ_URL: { kind: 'string' },
  DATABASE_READ_MAX_LAG_MS: { kind: 'int', default: '2000', min: 10, max: 3600000 },
  DATABASE_READ_WAIT_MS: { kind: 'int', default: '50', min: 0, max: 10000 },
  DATA_DIR: { kind: 'string', default: './data' },
  REDIS_URL: { kind: 'string' },
  REDIS_CLUSTER_NODES: { kind: 'list', default: '' },
  REDIS_PREFIX: { kind: 'string', default: 'chat' },
  // No default here: classic on one server, sharded on a cluster (loadConfig).
  REDIS_PUBSUB: { kind: 'string', oneOf: ['classic', 'sharded'] },
  JWT_SECRET: { kind: 'string' },
  JWT_ISSUER: { kind: 'string', default: 'chat-api' },
  JWT_AUDIENCE: { kind: 'string', default: 'chat-api' },
  ACCESS_TOKEN_TTL: { kind: 'int', default: '900', min: 10, max: 86400 },
  REFRESH_TOKEN_TTL: { kind: 'int', default: '2592000', min: 60, max: 31536000 },
  CORS_ORIGINS: { kind: 'list', default: '' },
  WS_ORIGINS: { kind: 'list', default: '' },
  BODY_LIMIT_BYTES: { kind: 'int', default: '65536', min: 1024, max: 10485760 },
  TRUST_PROXY: { kind: 'string', default: 'loopback,linklocal,uniquelocal' },
  HTTP_HEADERS_TIMEOUT_MS: { kind: 'int', default: '10000', min: 100, max: 600000 },
  HTTP_REQUEST_TIMEOUT_MS: { kind: 'int', default: '30000', min: 100, max: 3600000 },
  HTTP_IDLE_TIMEOUT_MS: { kind: 'int', default: '60000', min: 100, max: 3600000 },
  HTTP_KEEP_ALIVE_TIMEOUT_MS: { kind: 'int', default: '72000', min: 100, max: 3600000 },
  MESSAGE_MAX_CHARS: { kind: 'int', default: '4000', min: 1, max: 100000 },
  GROUP_MAX_MEMBERS: { kind: 'int', default: '1000', min: 2, max: 100000 },
  WS_MAX_FRAME_BYTES: { kind: 'int', default: '16384', min: 1024, max: 1048576 },
  WS_HEARTBEAT_MS: { kind: 'int', default: '30000', min: 100, max: 600000 },
  WS_MAX_BACKLOG_BYTES: { kind: 'int', default: '1048576', min: 1024, max: 268435456 },
  WS_MAX_VIOLATIONS: { kind: 'int', default: '10', min: 1, max: 1000 },
  WS_MAX_CONNECTIONS_PER_USER: { kind: 'int', default: '20', min: 1, max: 100000 },
  WS_CONNECTION_LEASE_MS: { kind: 'int', default: '30000', min: 1000, max: 600000 },
  WS_TICKET_TTL: { kind: 'int', default: '30', min: 1, max: 600 },
  TYPING_TTL_MS: { kind: 'int', default: '6000', min: 100, max: 60000 },
  TYPING_RELAY_INTERVAL_MS: { kind: 'int', default: '3000', min: 100, max: 60000 },
  RATE_LIMITS: { kind: 'string', default: 'on', oneOf: ['on', 'off'] },
  MESSAGE_RATE_PER_SEC: { kind: 'int', default: '20', min: 1, max: 1000000 },
  MESSAGE_RATE_BURST: { kind: 'int', default: '40', min: 1, max: 1000000 },
  LOGIN_MAX_FAILURES: { kind: 'int', default: '5', min: 1, max: 100000 },
  LOGIN_WINDOW_SEC: { kind: 'int', default: '900', min: 1, max: 86400 },
  LOGIN_MAX_FAILURES_PER_IP: { kind: 'int', default: '50', min: 1, max: 1000000 },
  LOGIN_ACCOUNT_SLOWDOWN_AFTER: { kind: 'int', default: '100', min: 1, max: 1000000 },
  REGISTER_MAX_PER_IP: { kind: 'int', default: '10', min: 1, max: 1000000 },
  REGISTER_WINDOW_SEC: { kind: 'int', default: '600', min: 1, max: 86400 },
  TICKET_MAX_PER_USER: { kind: 'int', default: '30', min: 1, max: 1000000 },
  TICKET_WINDOW_SEC: { kind: 'int', default: '60', min: 1, max: 86400 },
  MESSAGE_BATCH_MAX: { kind: 'int', default: '500', min: 1, max: 10000 },
  METRICS_TOKEN: { kind: 'string' },
  WEB_DIR: { kind: 'string', default: './web/dist' },
  S3_ENDPOINT: { kind: 'string' },
  S3_PUBLIC_ENDPOINT: { kind: 'string' },
  S3_BUCKET: { kind: 'string' },
  S3_REGION: { kind: 'string', default: 'us-east-1' },
  S3_ACCESS_KEY_ID: { kind: 'string' },
  S3_SECRET_ACCESS_KEY: { kind: 'string' },
  S3_FORCE_PATH_STYLE: { kind: 'bool', default: 'false' },
  ATTACHMENT_MAX_BYTES: { kind: 'int', default: '26214400', min: 1, max: 5368709120 },
  ATTACHMENT_CONTENT_TYPES: { kind: 'list', default: DEFAULT_CONTENT_TYPES.join(',') },
  ATTACHMENT_QUOTA_BYTES: { kind: 'int', default: '1073741824', min: 1, max: 1099511627776 },
  ATTACHMENT_RATE_PER_MIN: { kind: 'int', default: '30', min: 1, max: 1000000 },
  ATTACHMENT_UPLOAD_TTL_SEC: { kind: 'int', default: '900', min: 10, max: 604800 },
  ATTACHMENT_DOWNLOAD_TTL_SEC: { kind: 'int', default: '300', min: 10, max: 604800 },
  ATTACHMENT_UNSENT_TTL_SEC: { kind: 'int', default: '86400', min: 60, max: 31536000 },
  ATTACHMENT_SWEEP_INTERVAL_SEC: { kind: 'int', default: '300', min: 1, max: 86400 },
} as const satisfies Record<string, Spec>

export type SettingName = keyof typeof SETTINGS
