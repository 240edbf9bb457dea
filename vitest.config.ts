import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/helpers/global-setup.ts'],
    // Fails a test file whose WebSocket frames break docs/asyncapi.yaml (test/helpers/frame-contract.ts).
    setupFiles: ['test/helpers/contract-setup.ts'],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    // Each file starts its own PGlite (heavy) and databases; two at a time suits 2 cores.
    maxWorkers: 2,
    reporters: ['default', './test/helpers/plain-reporter.ts'],
  },
})
