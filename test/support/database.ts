import pg from 'pg';
import { randomUUID } from 'node:crypto';
import { inject } from 'vitest';
import { PgSqlClient } from '../../lambdas/core/sql/pg-client.ts';

/** A fresh, empty database on the shared test server, with an engine client and a raw pg pool for assertions. */
export interface TestDatabase {
  readonly url: string;
  readonly name: string;
  readonly client: PgSqlClient;
  /** Plain node-postgres, for setting up and checking data beside the engine. */
  readonly pool: pg.Pool;
  drop(): Promise<void>;
}

export async function createTestDatabase(): Promise<TestDatabase> {
  const serverUrl = inject('postgresUrl');
  const name = `t_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
  const admin = new pg.Client({ connectionString: serverUrl });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const url = serverUrl.replace(/\/postgres$/, `/${name}`);
  const client = new PgSqlClient(url);
  const pool = new pg.Pool({ connectionString: url, max: 8 });
  pool.on('error', () => {});
  return {
    url,
    name,
    client,
    pool,
    async drop() {
      await client.close();
      await pool.end();
      const cleanup = new pg.Client({ connectionString: serverUrl });
      await cleanup.connect();
      await cleanup.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await cleanup.end();
    },
  };
}
