import { sql } from 'drizzle-orm'
import { hashPassword } from '../src/auth/passwords.js'
import { loadConfig } from '../src/config/config.js'
import { newId } from '../src/lib/ids.js'
import { createLogger } from '../src/observability/logger.js'
import { openDatabase } from '../src/store/db.js'
import { users } from '../src/store/schema.js'
import { startRuntime } from '../src/wiring.js'
import { sendEvent, serveIpc } from './proc.js'

/**
 * One chat server instance started by the bench: the same runtime as `src/server.ts`, configured
 * from the environment the bench passes, listening on 127.0.0.1 on a free port. Its IPC channel
 * answers the bench's setup requests (users inserted with one precomputed argon2 hash, raw SQL for
 * the history seed) and reports its memory, so the load generator never shares its event loop.
 */
const config = loadConfig(process.env)
const logger = createLogger(config.logLevel)
const database = await openDatabase({
  databaseUrl: config.databaseUrl,
  dataDir: config.databaseUrl ? undefined : 'memory://',
  poolSize: config.databasePoolSize,
})
await database.migrate()
const runtime = await startRuntime(config, logger, { database })
await runtime.app.listen({ host: '127.0.0.1', port: 0 })
const address = runtime.app.server.address()
const port = typeof address === 'object' && address ? address.port : 0

const BENCH_PASSWORD = 'Bench-passw0rd!'
const SEND_METRICS =
  /^(chat_message_stage_seconds|chat_message_batch_size|chat_sends_shed_total|nodejs_eventloop_lag_(p99|max)_seconds|nodejs_gc_duration_seconds)$/
let passwordHash: Promise<string> | undefined

const rows = (result: unknown): Record<string, unknown>[] =>
  Array.isArray(result) ? result : ((result as { rows?: Record<string, unknown>[] }).rows ?? [])

await serveIpc(
  async (op, msg) => {
    switch (op) {
      case 'seedUsers': {
        // One argon2 hash for every user: the bench measures messaging, not password hashing.
        passwordHash ??= hashPassword(BENCH_PASSWORD)
        const hash = await passwordHash
        const count = msg.count as number
        const tag = msg.tag as string
        const ids: string[] = []
        for (let i = 0; i < count; i += 1000) {
          const chunk = Array.from({ length: Math.min(1000, count - i) }, (_, j) => ({
            id: newId(),
            email: `${tag}-${i + j}@bench.invalid`,
            passwordHash: hash,
            fullName: `Bench ${i + j}`,
          }))
          await database.db.insert(users).values(chunk)
          ids.push(...chunk.map((u) => u.id))
        }
        return ids
      }
      case 'sql':
        return rows(await database.db.execute(sql.raw(msg.text as string)))
      case 'stats': {
        if (msg.gc && typeof globalThis.gc === 'function') {
          globalThis.gc()
          await new Promise((r) => setTimeout(r, 50))
          globalThis.gc()
        }
        const m = process.memoryUsage()
        return {
          rss: m.rss,
          heapTotal: m.heapTotal,
          heapUsed: m.heapUsed,
          external: m.external,
          arrayBuffers: m.arrayBuffers,
        }
      }
      case 'metrics': {
        // The send path's metrics, as /metrics has them (reading them resets the event-loop delay).
        const all = await runtime.services.metrics.registry.getMetricsAsJSON()
        return all.filter((m) => SEND_METRICS.test(m.name))
      }
      case 'heapSnapshot': {
        // For memory investigations (connections): a V8 heap snapshot in bench/results/.
        const { writeHeapSnapshot } = await import('node:v8')
        globalThis.gc?.()
        return writeHeapSnapshot(msg.file as string)
      }
      default:
        throw new Error(`unknown op ${op}`)
    }
  },
  async () => {
    await runtime.stop()
    await database.close()
  },
)
sendEvent('listening', { port, database: database.describe, broker: config.redisUrl ? 'redis' : 'memory' })
