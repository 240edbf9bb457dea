import fc from 'fast-check'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { DRIVERS, startTestApp, type TestApp } from '../helpers/app.js'
import { emptyFigures, type FaultRunFigures, faultRun, type SendOp } from '../helpers/sdk-fault-run.js'

/**
 * The SDK's delivery guarantees under a bad network: two users send at random into a direct
 * conversation and a group while a proxy drops, resets and stalls their connections at random
 * points. Every message must reach both clients exactly once and in order, every outbox must
 * end empty, and what the clients show must equal history. A short run here; the long one is
 * `npm run test:client-faults`. The seed is printed: CLIENT_FAULT_SEED=<seed> replays the run.
 */
const RUNS: Record<string, number> = { postgres: 4, pglite: 2 }

export const sendOp: fc.Arbitrary<SendOp> = fc.record({
  from: fc.constantFrom(0 as const, 1 as const),
  conversation: fc.constantFrom(0 as const, 1 as const),
  text: fc.string({ minLength: 1, maxLength: 40 }),
  pauseMs: fc.nat({ max: 100 }),
})

describe.each(DRIVERS)('SDK under network faults (%s)', (driver) => {
  let t: TestApp
  beforeAll(async () => {
    t = await startTestApp({ driver })
    await t.listen()
  })
  afterAll(async () => {
    await t?.close()
  })

  it('delivers every message exactly once, in order, to both members; outboxes end empty', async () => {
    const seed = Number(process.env.CLIENT_FAULT_SEED ?? Date.now() % 2 ** 31)
    console.log(`SDK fault run (${driver}): CLIENT_FAULT_SEED=${seed}`)
    const figures: FaultRunFigures = emptyFigures()
    await fc.assert(
      fc.asyncProperty(fc.nat(), fc.array(sendOp, { minLength: 1, maxLength: 25 }), async (runSeed, ops) => {
        const before = { ...figures }
        await faultRun(t.url, runSeed, ops, figures)
        for (const k of [
          'lost',
          'duplicated',
          'reordered',
          'historyMismatches',
          'outboxLeft',
          'storedTwice',
          'sendOrder',
        ] as const)
          expect(figures[k] - before[k], k).toBe(0)
      }),
      { seed, numRuns: RUNS[driver] ?? 2, endOnFailure: true },
    )
    console.log(`SDK fault run (${driver}): ${JSON.stringify(figures)}`)
    expect(figures.faults).toBeGreaterThan(0)
  }, 180_000)
})
