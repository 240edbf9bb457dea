import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** What the read router reports (store/read-replica.ts), described here so metrics need not import the store. */
export interface ReadSource {
  stats(): {
    replica: string
    lagSeconds: number
    lagBytes: number
    /** `target/read` (e.g. `replica/history`) → count. */
    reads: Map<string, number>
    fallbacks: Map<string, number>
  }
}

/** One registry per app instance, so several apps in one process (tests, `npm run cluster`) do not collide. */
export function createMetrics(source: { publishFailures: number }, reads?: ReadSource) {
  const registry = new Registry()
  // Includes the event-loop delay (`nodejs_eventloop_lag_p50/p90/p99/max_seconds`), measured
  // with `monitorEventLoopDelay` and reset at each scrape, so each scrape shows its own interval.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 })
  const queue = { depth: () => 0 }
  return {
    registry,
    /** Where the send queue's depth is read from (set once the message service exists). */
    queue,
    messageStages: new Histogram({
      name: 'chat_message_stage_seconds',
      help:
        'Time a sent message spends in each stage: receive (frame received → queued for storage), ' +
        'queue (queued → its transaction starts), transaction (start → commit), publish (commit → ' +
        "published and handed to this instance's sockets), write (published → written to the sockets), " +
        'total (received → written). receive, queue and total per message; the others per batch',
      labelNames: ['stage'] as const,
      buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    messageBatchSize: new Histogram({
      name: 'chat_message_batch_size',
      help: 'Messages per group-commit transaction',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000],
      registers: [registry],
    }),
    sendsShed: new Counter({
      name: 'chat_sends_shed_total',
      help: 'Sends refused before storage because the server was overloaded (the client got an error frame or 503)',
      labelNames: ['reason'] as const,
      registers: [registry],
    }),
    sendQueueDepth: new Gauge({
      name: 'chat_send_queue_depth',
      help: 'Sends waiting for a group-commit transaction',
      registers: [registry],
      collect() {
        this.set(queue.depth())
      },
    }),
    httpDuration: new Histogram({
      name: 'http_request_duration_seconds',
      help: 'HTTP request latency by route',
      labelNames: ['method', 'route', 'status'] as const,
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    }),
    publishFailures: new Counter({
      name: 'chat_broker_publish_failures_total',
      help: 'Events committed but not published to other instances (clients recover them by resume)',
      registers: [registry],
      collect() {
        this.reset()
        this.inc(source.publishFailures)
      },
    }),
    dbReads: new Counter({
      name: 'chat_db_reads_total',
      help: 'Reads that may use the replica (history, resume, conversations, users), by where they ran',
      labelNames: ['target', 'read'] as const,
      registers: [registry],
      collect() {
        this.reset()
        for (const [key, n] of reads?.stats().reads ?? []) {
          const [target = '', read = ''] = key.split('/')
          this.inc({ target, read }, n)
        }
      },
    }),
    replicaFallbacks: new Counter({
      name: 'chat_db_replica_fallbacks_total',
      help: 'Replica-eligible reads run on the primary, by reason (down, lagging, not_replica, wait, error)',
      labelNames: ['reason'] as const,
      registers: [registry],
      collect() {
        this.reset()
        for (const [reason, n] of reads?.stats().fallbacks ?? []) this.inc({ reason }, n)
      },
    }),
    replicaUp: new Gauge({
      name: 'chat_db_replica_in_use',
      help: '1 while the read replica serves reads; 0 while it is bypassed or none is configured',
      registers: [registry],
      collect() {
        this.set(reads?.stats().replica === 'up' ? 1 : 0)
      },
    }),
    replicaLagSeconds: new Gauge({
      name: 'chat_db_replica_lag_seconds',
      help: 'How long the replica has been behind the primary (0 when caught up)',
      registers: [registry],
      collect() {
        this.set(reads?.stats().lagSeconds ?? 0)
      },
    }),
    replicaLagBytes: new Gauge({
      name: 'chat_db_replica_lag_bytes',
      help: 'WAL bytes the replica has not replayed yet, at the last check',
      registers: [registry],
      collect() {
        this.set(reads?.stats().lagBytes ?? 0)
      },
    }),
    wsConnections: new Gauge({
      name: 'chat_ws_connections',
      help: 'Open WebSocket connections',
      registers: [registry],
    }),
    wsFramesIn: new Counter({
      name: 'chat_ws_frames_in_total',
      help: 'Inbound WebSocket frames by type',
      labelNames: ['type'] as const,
      registers: [registry],
    }),
    wsClosed: new Counter({
      name: 'chat_ws_closed_total',
      help: 'WebSocket closes by code',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    retentionExpired: new Counter({
      name: 'chat_retention_messages_expired_total',
      help: 'Messages the retention job turned into tombstones (docs/moderation.md)',
      registers: [registry],
    }),
    retentionRuns: new Counter({
      name: 'chat_retention_runs_total',
      help: 'Retention job runs by outcome (done, busy: another instance held the lock, failed)',
      labelNames: ['outcome'] as const,
      registers: [registry],
    }),
  }
}

export type Metrics = ReturnType<typeof createMetrics>

const frameCounters = new WeakMap<Metrics, Map<string, { inc(): void }>>()

/** Counts an inbound frame; the per-type child is looked up once (labels() hashes on every call). */
export function countFrameIn(metrics: Metrics, type: string): void {
  let byType = frameCounters.get(metrics)
  if (!byType) {
    byType = new Map()
    frameCounters.set(metrics, byType)
  }
  let c = byType.get(type)
  if (!c) {
    c = metrics.wsFramesIn.labels(type)
    byType.set(type, c)
  }
  c.inc()
}

/**
 * The message writer's probe (services/message-writer.ts `SendProbe`) over these metrics. Each
 * stage's child histogram is looked up once, so an observation costs no label hashing.
 */
export function sendProbe(metrics: Metrics) {
  const children = new Map<string, { observe(v: number): void }>()
  for (const s of ['receive', 'queue', 'transaction', 'publish', 'write', 'total'])
    children.set(s, metrics.messageStages.labels(s))
  const shed = metrics.sendsShed.labels('queue_full')
  return {
    stage: (stage: string, seconds: number) => children.get(stage)?.observe(seconds),
    batch: (size: number) => metrics.messageBatchSize.observe(size),
    shed: (_reason: 'queue_full') => shed.inc(),
  }
}
