import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client'

/** One registry per app instance, so several apps in one process (tests, `npm run cluster`) do not collide. */
export function createMetrics(source: { publishFailures: number }) {
  const registry = new Registry()
  collectDefaultMetrics({ register: registry })
  return {
    registry,
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
  }
}

export type Metrics = ReturnType<typeof createMetrics>
