import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/support/setup-file.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Test files share one embedded PostgreSQL server, each file in databases of its own.
    pool: 'forks',
    // The handlers' structured logs are for CloudWatch; tests assert on results, not on log lines.
    env: { POWERTOOLS_LOG_LEVEL: 'SILENT' },
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
