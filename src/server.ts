import type { Logger } from 'pino'
import { type Config, ConfigError, loadConfig, loadDotEnv } from './config/config.js'
import { createLogger } from './observability/logger.js'
import { startRuntime } from './wiring.js'
import { instanceLogger, supervises, superviseWorkers } from './workers.js'

// After the deadline the runtime destroys the connections still open; closing the broker and the
// database then takes moments, unless one of them hangs: the process goes anyway.
const EXIT_GRACE_MS = 2000

loadDotEnv()
let config: Config
try {
  config = loadConfig()
} catch (err) {
  if (err instanceof ConfigError) {
    console.error(err.message)
    process.exit(1)
  }
  throw err
}

const logger = createLogger(config.logLevel, config.env === 'development' && process.stdout.isTTY)
if (supervises(config)) superviseWorkers(config, logger)
else await serve(config, instanceLogger(logger))

/** One instance: this process (WORKERS=1) or one of the workers (src/workers.ts). */
async function serve(config: Config, logger: Logger): Promise<void> {
  const runtime = await startRuntime(config, logger)
  const address = await runtime.app.listen({ port: config.port, host: config.host })
  const shown = address.replace('0.0.0.0', 'localhost')
  logger.info(`listening on ${address}; open ${shown}/ to chat (API docs at ${shown}/docs)`)

  let stopping = false
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    process.on(signal, () => {
      if (stopping) return
      stopping = true
      logger.info({ signal }, 'shutting down')
      setTimeout(() => {
        logger.error('shutdown did not finish in time; exiting')
        process.exit(1)
      }, config.shutdownTimeoutMs + EXIT_GRACE_MS).unref()
      runtime
        .stop()
        .then(() => process.exit(0))
        .catch((err) => {
          logger.error({ err }, 'shutdown failed')
          process.exit(1)
        })
    })
  }
}
