import type { Logger } from 'pino'
import type { AttachmentService } from './services/attachments.js'
import type { Services } from './services/index.js'
import type { Database } from './store/db.js'
import { ensureLanguageIndex, languageIndexName } from './store/search-index.js'

/** The runtime's background work beside the requests (started by `startRuntime` in wiring.ts). */

/** SEARCH_LANGUAGE's full-text index, made at startup when missing (store/search-index.ts). */
export async function languageIndex(database: Database, language: string, logger: Logger): Promise<void> {
  const started = Date.now()
  const state = await ensureLanguageIndex(database.db, language, database.driver === 'postgres')
  if (state === 'created')
    logger.info({ index: languageIndexName(language), ms: Date.now() - started }, 'search index created')
  if (state === 'invalid')
    logger.warn(
      { index: languageIndexName(language) },
      'search index is invalid (an interrupted build?): drop it and restart to build it again',
    )
}

/**
 * Runs the attachment sweep every `intervalSec` (one instance at a time, by an advisory lock):
 * unsent attachments past their TTL, and objects of deleted messages not yet removed.
 */
export function startSweeper(
  attachments: AttachmentService,
  intervalSec: number,
  logger: Logger,
): NodeJS.Timeout {
  let running = false
  const timer = setInterval(() => {
    if (running) return
    running = true
    attachments
      .sweep()
      .then((done) => {
        if (done && done.removed > 0) logger.info(done, 'attachment sweep removed files')
      })
      .catch((err) => logger.warn({ err }, 'attachment sweep failed; retried at the next interval'))
      .finally(() => {
        running = false
      })
  }, intervalSec * 1000)
  timer.unref()
  return timer
}

/** Runs the retention job on a timer, counting and logging each run's outcome. */
export function startRetention(services: Services, intervalSec: number, logger: Logger) {
  const runs = services.metrics.retentionRuns
  return services.retention.every(intervalSec, (done) => {
    if (done instanceof Error) {
      runs.inc({ outcome: 'failed' })
      logger.warn({ err: done }, 'retention job failed; it goes on at the next interval')
      return
    }
    runs.inc({ outcome: done.busy ? 'busy' : 'done' })
    if (done.expired > 0) logger.info(done, 'retention expired messages')
  })
}
