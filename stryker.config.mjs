// @ts-check
/**
 * Mutation testing: `npm run test:mutation` (see docs/testing.md). Not part of `npm test`.
 * @type {import('@stryker-mutator/api/core').PartialStrykerOptions}
 */
export default {
  testRunner: 'vitest',
  // Only the unit tests and the writer's database tests run against mutants, not the whole suite.
  vitest: { configFile: 'vitest.mutation.config.ts', related: false },
  coverageAnalysis: 'perTest',
  // The group-commit writer is two files since the store layer: the queue and the batch's SQL.
  mutate: [
    'src/ws/feed.ts',
    'src/services/message-writer.ts',
    'src/store/message-batch.ts',
    'src/auth/**/*.ts',
  ],
  // TypeScript 7 has no JS API and Stryker's tsconfig step would crash on it: point it at a file
  // that does not exist (the vitest runner does not need it) and enable no typescript checker.
  tsconfigFile: 'stryker-has-no-tsconfig.json',
  checkers: [],
  concurrency: 2,
  // Above vitest.mutation.config.ts's testTimeout, so that a hung test fails there first.
  timeoutMS: 20_000,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  tempDirName: '.stryker-tmp',
  cleanTempDir: 'always',
}
