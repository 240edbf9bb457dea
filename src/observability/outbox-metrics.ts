import { Counter, Gauge, type Registry } from 'prom-client'

/** What the outbox worker reports (services/outbox-worker.ts), described here so metrics need not import services. */
export interface OutboxSource {
  /** `channel/outcome` → deliveries that ended (or were retried) that way on this instance. */
  readonly counts: Map<string, number>
  /** Work not done yet, across every instance (one query at scrape time). */
  backlog(): Promise<{ pending: number; oldestAgeSec: number }>
}

/**
 * The outbox's metrics (docs/notifications.md): attempts by outcome on this instance, and the
 * shared backlog. The backlog gauges read the database at scrape time; while it is down they
 * keep their last value.
 */
export function registerOutboxMetrics(registry: Registry, source: OutboxSource): void {
  new Counter({
    name: 'chat_outbox_deliveries_total',
    help: 'Outbox delivery attempts by channel and outcome (delivered, retried, dead, gone) on this instance',
    labelNames: ['channel', 'outcome'] as const,
    registers: [registry],
    collect() {
      this.reset()
      for (const [key, n] of source.counts) {
        const [channel = '', outcome = ''] = key.split('/')
        this.inc({ channel, outcome }, n)
      }
    },
  })
  let last = { pending: 0, oldestAgeSec: 0 }
  const read = async () => {
    last = await source.backlog().catch(() => last)
    return last
  }
  new Gauge({
    name: 'chat_outbox_pending',
    help: 'Outbox events not yet expanded plus deliveries not yet finished (all instances)',
    registers: [registry],
    async collect() {
      this.set((await read()).pending)
    },
  })
  new Gauge({
    name: 'chat_outbox_oldest_pending_seconds',
    help: 'Age of the oldest outbox event or delivery not finished yet (0 when none)',
    registers: [registry],
    async collect() {
      this.set((await read()).oldestAgeSec)
    },
  })
}
