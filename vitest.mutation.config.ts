import { defineConfig } from 'vitest/config'

/**
 * The tests that `npm run test:mutation` (StrykerJS) runs against each mutant: the unit tests and
 * the message writer's database tests, not the whole suite. The global setup is the suite's own
 * (PostgreSQL and Redis reachable, a migrated PGlite snapshot for the writer's PGlite runs).
 */
export default defineConfig({
  test: {
    include: ['test/unit/**/*.test.ts', 'test/integration/message-writer*.test.ts'],
    // It reads the source text, which Stryker's instrumentation makes longer: not a behaviour test.
    exclude: ['test/unit/architecture.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // A mutant that stops the writer leaves a test waiting for a send that never settles. Failing
    // it here (the slowest test takes about 1.5 s) counts the mutant killed; waiting for Stryker's
    // own timeout instead would also restart the runner, which costs half a minute each time.
    testTimeout: 10_000,
    hookTimeout: 60_000,
  },
})
