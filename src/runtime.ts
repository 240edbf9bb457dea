import type { FastifyInstance } from 'fastify'
import type { Logger } from 'pino'
import { buildApp } from './app.js'
import type { Broker } from './broker/broker.js'
import { MemoryBroker } from './broker/memory.js'
import type { Config } from './config/config.js'
import { openDatabase } from './store/db.js'

export interface Runtime {
  app: FastifyInstance
  /** Stops accepting, lets in-flight work finish, closes sockets (1001), the broker and the database. */
  stop(): Promise<void>
}

/**
 * Opens the database (migrating it), picks the broker, and builds the app: what `server.ts`,
 * `npm run cluster`, the benchmarks and multi-instance tests all start.
 */
export async function startRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const database = await openDatabase({
    databaseUrl: config.databaseUrl,
    dataDir: config.dataDir,
    poolSize: config.databasePoolSize,
  })
  await database.migrate()
  const broker = await createBroker(config, logger)
  const { app } = await buildApp({ config, database, broker, logger })
  logger.info(
    { database: database.describe, broker: broker.kind },
    `database: ${database.describe}; broker: ${broker.kind}`,
  )
  return {
    app,
    stop: async () => {
      await app.close()
      await broker.close()
      await database.close()
    },
  }
}

async function createBroker(_config: Config, _logger: Logger): Promise<Broker> {
  return new MemoryBroker()
}
