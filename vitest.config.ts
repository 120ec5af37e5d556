import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    setupFiles: ['test/support/setup-file.ts'],
    globalSetup: ['test/support/global-setup.ts'],
    // Test files share one embedded PostgreSQL server, each file in databases of its own.
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
  },
});
