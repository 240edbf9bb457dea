import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DRIVERS, startTestApp, type TestApp } from '../helpers/app.js'
import {
  emptyFigures,
  type FaultRunFigures,
  faultRun,
  MUST_BE_ZERO,
  sendOps,
} from '../helpers/sdk-fault-run.js'

/**
 * The SDK's delivery guarantees under a bad network: two users send at random into a direct
 * conversation and a group while a proxy drops, resets and stalls their connections at random
 * points. Every message must reach both clients exactly once and in order, every outbox must
 * end empty, and what the clients show must equal history.
 *
 * A short run here; `npm run test:client-faults` is the long one (CLIENT_FAULT_RUNS runs per
 * driver, CLIENT_FAULT_MIN_OPS to CLIENT_FAULT_MAX_OPS sends each). The seed is printed: CLIENT_FAULT_SEED=<seed>
 * replays the same cases and fault decisions.
 */
const env = process.env
const runs = (driver: string) => Number(env.CLIENT_FAULT_RUNS ?? (driver === 'postgres' ? 4 : 2))
const maxOps = Number(env.CLIENT_FAULT_MAX_OPS ?? 25)
const minOps = Math.min(maxOps, Number(env.CLIENT_FAULT_MIN_OPS ?? 1))

describe.each(DRIVERS)('SDK under network faults (%s)', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
    await t.listen()
  })
  afterAll(async () => {
    await t?.close()
  })

  it(
    'delivers every message exactly once, in order, to both members; outboxes end empty',
    async () => {
      const seed = Number(env.CLIENT_FAULT_SEED ?? Date.now() % 2 ** 31)
      console.log(`SDK fault run (${driver}): CLIENT_FAULT_SEED=${seed}`)
      const figures: FaultRunFigures = emptyFigures()
      await fc.assert(
        fc.asyncProperty(fc.nat(), sendOps(minOps, maxOps), async (runSeed, ops) => {
          const before = { ...figures }
          await faultRun(t.url, runSeed, ops, figures)
          const broken = MUST_BE_ZERO.filter((k) => figures[k] !== before[k])
          if (broken.length > 0)
            console.log(`SDK fault run (${driver}): broke ${broken}: ${JSON.stringify(figures)}`)
          for (const k of MUST_BE_ZERO) expect(figures[k] - before[k], k).toBe(0)
          if (figures.runs % 10 === 0) console.log(`SDK fault run (${driver}): ${JSON.stringify(figures)}`)
        }),
        { seed, numRuns: runs(driver), endOnFailure: true },
      )
      console.log(`SDK fault run (${driver}): ${JSON.stringify(figures)}`)
      expect(figures.faults).toBeGreaterThan(0)
    },
    120_000 + runs(driver) * 60_000,
  )
})
