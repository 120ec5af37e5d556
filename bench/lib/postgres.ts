import pg from 'pg';
import { copyFileSync, mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEMO_MIGRATIONS, seedDemoDatabase } from '../../bin/local/demo-database.ts';
import { startEmbeddedPostgres, type RunningPostgres } from '../../bin/local/embedded-postgres.ts';
import {
  acquireLease,
  ensureStateSchema,
  expand,
  loadCatalog,
  PgSqlClient,
  resolveSettings,
  type Catalog,
  type RunContext,
  type SettingsOverrides,
  type SqlClient,
} from '../../lambdas/core/index.ts';

/** The run id holding the lease in every benchmark database. */
export const BENCH_RUN_ID = 'emc-benchmark';
/** application_name of the engine's connections, so the lock sampler can tell them from the writer's. */
export const ENGINE_APPLICATION_NAME = 'emc-bench-engine';

/** The statement of the demo's migrate01, without the keyset range: what "one single UPDATE" runs. */
export const SINGLE_UPDATE_SQL =
  "UPDATE images SET visibility = CASE WHEN is_public THEN 'public' ELSE 'private' END WHERE visibility IS NULL";

/** The same backfill, batched the naive way: each statement finds its own rows, until one changes none. */
export function naiveBatchSql(batchSize: number): string {
  return (
    "UPDATE images SET visibility = CASE WHEN is_public THEN 'public' ELSE 'private' END " +
    `WHERE id = ANY(ARRAY(SELECT id FROM images WHERE visibility IS NULL LIMIT ${batchSize}))`
  );
}

/**
 * The demo release bexar cut down to its expand steps and migrate01 (the visibility backfill, a keyset UPDATE):
 * the tables, triggers and index the application runs with during migrate, and one step to time. The files are
 * copied unchanged, so their checksums are the demo's.
 */
export async function migrate01Catalog(): Promise<Catalog> {
  const directory = mkdtempSync(join(tmpdir(), 'emc-bench-catalog-'));
  mkdirSync(join(directory, 'bexar'));
  for (const file of [
    'expand01_add_visibility.sql',
    'expand02_add_owner_id.sql',
    'expand03_index_owner_id.sql',
    'migrate01_backfill_visibility.sql',
  ]) {
    copyFileSync(join(DEMO_MIGRATIONS, 'bexar', file), join(directory, 'bexar', file));
  }
  copyFileSync(join(DEMO_MIGRATIONS, 'releases.json'), join(directory, 'releases.json'));
  return loadCatalog(directory);
}

/** One embedded PostgreSQL 17 for the whole benchmark; every measurement runs in a database of its own. */
export class BenchServer {
  private constructor(
    private readonly server: RunningPostgres,
    readonly admin: pg.Client,
  ) {}

  static async start(): Promise<BenchServer> {
    const server = await startEmbeddedPostgres({ name: 'bench' });
    const admin = new pg.Client({ connectionString: server.url, application_name: 'emc-bench-admin' });
    await admin.connect();
    return new BenchServer(server, admin);
  }

  url(database: string): string {
    return this.server.url.replace(/\/postgres$/, `/${database}`);
  }

  async show(setting: string): Promise<string> {
    const result = await this.admin.query<Record<string, string>>(`SHOW ${setting}`);
    return Object.values(result.rows[0] ?? {})[0] ?? '';
  }

  async createDatabase(name: string): Promise<void> {
    await this.dropDatabase(name);
    await this.admin.query(`CREATE DATABASE ${name}`);
  }

  async dropDatabase(name: string): Promise<void> {
    await this.admin.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  }

  /**
   * Seeds the demo table with `rows` images and applies the catalog's expand steps (so the triggers and the
   * owner_id index are in place), then VACUUM ANALYZE and CHECKPOINT: the template every contender is copied from.
   */
  async prepareTemplate(name: string, rows: number, catalog: Catalog): Promise<void> {
    await this.createDatabase(name);
    const client = new PgSqlClient(this.url(name), { applicationName: ENGINE_APPLICATION_NAME });
    try {
      await seedDemoDatabase(client, rows);
      const ctx = await engineContext(client, {});
      await expand(ctx, catalog);
      await client.query('VACUUM ANALYZE images');
    } finally {
      await client.close();
    }
    await this.admin.query('CHECKPOINT');
  }

  /**
   * A fresh copy of a template (a file copy: seconds even for a million rows), vacuumed and analysed the same way
   * before every measurement, with a checkpoint so that no earlier contender's dirty pages are written during it.
   */
  async freshCopy(name: string, template: string): Promise<string> {
    await this.dropDatabase(name);
    await this.admin.query(`CREATE DATABASE ${name} TEMPLATE ${template} STRATEGY FILE_COPY`);
    const client = new pg.Client({ connectionString: this.url(name), application_name: 'emc-bench-admin' });
    await client.connect();
    try {
      await client.query('VACUUM ANALYZE images');
    } finally {
      await client.end();
    }
    await this.admin.query('CHECKPOINT');
    return this.url(name);
  }

  async stop(): Promise<void> {
    await this.admin.end().catch(() => {});
    await this.server.stop();
  }
}

/** A run context holding the lease (as the start task leaves it), with the benchmark's settings. */
export async function engineContext(
  client: SqlClient,
  overrides: SettingsOverrides,
  onEvent?: RunContext['onEvent'],
): Promise<RunContext> {
  const settings = resolveSettings(overrides);
  await ensureStateSchema(client);
  await acquireLease(client, BENCH_RUN_ID, settings.leaseTtlSeconds);
  return { client, runId: BENCH_RUN_ID, settings, onEvent };
}

/** Rows the backfill has not reached: 0 once a contender is done. */
export async function pendingVisibility(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM images WHERE visibility IS NULL');
    return result.rows[0]!.n;
  } finally {
    await client.end();
  }
}
