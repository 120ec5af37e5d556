import pg from 'pg';
import { migrate, migrateToEnd, PgSqlClient, type Catalog, type SettingsOverrides, type SqlClient } from '../../lambdas/core/index.ts';
import { ENGINE_APPLICATION_NAME, engineContext, naiveBatchSql, SINGLE_UPDATE_SQL } from './postgres.ts';

/** One way of running the backfill to the end, timed. */
export interface MigrateRun {
  readonly rows: number;
  readonly batches: number;
  readonly durationMs: number;
  /** Each batch's wall time, in order (the engine's `batch` events, or each naive statement). */
  readonly batchDurationsMs: readonly number[];
  /** Engine only: how many migrate() calls it took. */
  readonly calls?: number;
}

/**
 * The engine's keyset batching: migrate() called until it reports `finished`, as the state machine's loop does.
 * Batch durations come from the engine's own `batch` events (the whole batch transaction: lease renewal, range,
 * statement, cursor update, commit).
 */
export async function engineKeyset(url: string, catalog: Catalog, overrides: SettingsOverrides): Promise<MigrateRun> {
  const client = new PgSqlClient(url, { applicationName: ENGINE_APPLICATION_NAME });
  try {
    return await engineToEnd(client, catalog, overrides);
  } finally {
    await client.close();
  }
}

/**
 * The same loop over any `SqlClient` (node-postgres or the Data API client). `onBatch` is told at each batch's
 * `batch` event (after its commit, before the pause that follows it), `onMigrateCall` before each migrate() call.
 */
export async function engineToEnd(
  client: SqlClient,
  catalog: Catalog,
  overrides: SettingsOverrides,
  hooks: { readonly onBatch?: () => void; readonly onMigrateCall?: () => void } = {},
): Promise<MigrateRun> {
  const durations: number[] = [];
  const ctx = await engineContext(client, overrides, (event) => {
    if (event.type !== 'batch') return;
    durations.push(event.durationMs);
    hooks.onBatch?.();
  });
  const started = performance.now();
  const results = await migrateToEnd(ctx, catalog, { beforeCall: () => hooks.onMigrateCall?.() });
  const rows = results.reduce((n, r) => n + r.rowsThisCall, 0);
  const calls = results.length;
  return { rows, batches: durations.length, durationMs: performance.now() - started, batchDurationsMs: durations, calls };
}

/**
 * One migrate() call with `migrateBudgetMs` as the measurement window: the engine runs batches until the budget is
 * spent (or the step is done). `keys` is how far the cursor moved (keys_scanned), the work covered in the window;
 * `batchSizes` the rows each batch was sized for (adaptive, or fixed).
 */
export async function engineWindow(
  url: string,
  catalog: Catalog,
  overrides: SettingsOverrides & { migrateBudgetMs: number },
): Promise<MigrateRun & { keys: number; batchSizes: readonly number[] }> {
  const client = new PgSqlClient(url, { applicationName: ENGINE_APPLICATION_NAME });
  const durations: number[] = [];
  const sizes: number[] = [];
  try {
    const ctx = await engineContext(client, overrides, (event) => {
      if (event.type !== 'batch') return;
      durations.push(event.durationMs);
      sizes.push(event.batchSize);
    });
    const started = performance.now();
    const result = await migrate(ctx, catalog);
    const durationMs = performance.now() - started;
    const progress = await client.query<{ keys: string }>('SELECT coalesce(sum(keys_scanned), 0)::text AS keys FROM emc.migrate_progress');
    return {
      rows: result.rowsThisCall,
      keys: Number(progress.rows[0]!.keys),
      batches: durations.length,
      durationMs,
      batchDurationsMs: durations,
      batchSizes: sizes,
      calls: 1,
    };
  } finally {
    await client.close();
  }
}

/**
 * The same keyset batches written by hand: per batch BEGIN, the engine's range query, the migrate01 statement on
 * that range, COMMIT. No lease, no timeouts, no cursor row: what batching costs before the engine's bookkeeping.
 */
export async function bareKeyset(url: string, batchSize: number): Promise<MigrateRun> {
  const client = new pg.Client({ connectionString: url, application_name: ENGINE_APPLICATION_NAME });
  await client.connect();
  try {
    const durations: number[] = [];
    let rows = 0;
    let cursor: string | undefined;
    const started = performance.now();
    for (;;) {
      const batchStart = performance.now();
      await client.query('BEGIN');
      const range = await client.query<{ lo: string | null; hi: string | null; n: number }>(
        `SELECT min(k)::text AS lo, max(k)::text AS hi, count(*)::int AS n
         FROM (SELECT id AS k FROM images ${cursor === undefined ? '' : 'WHERE id > $2::bigint'} ORDER BY id LIMIT $1) batch`,
        cursor === undefined ? [batchSize] : [batchSize, cursor],
      );
      const { lo, hi, n } = range.rows[0]!;
      if (n === 0 || lo === null || hi === null) {
        await client.query('COMMIT');
        break;
      }
      const result = await client.query(
        "UPDATE images SET visibility = CASE WHEN is_public THEN 'public' ELSE 'private' END " +
          'WHERE id BETWEEN $1 AND $2 AND visibility IS NULL',
        [lo, hi],
      );
      await client.query('COMMIT');
      durations.push(performance.now() - batchStart);
      rows += result.rowCount ?? 0;
      cursor = hi;
      if (n < batchSize) break;
    }
    return { rows, batches: durations.length, durationMs: performance.now() - started, batchDurationsMs: durations };
  } finally {
    await client.end();
  }
}

/** The limit: the whole backfill as one UPDATE in one transaction (every row stays locked until it commits). */
export async function singleUpdate(url: string): Promise<MigrateRun> {
  const client = new pg.Client({ connectionString: url, application_name: ENGINE_APPLICATION_NAME });
  await client.connect();
  try {
    const started = performance.now();
    const result = await client.query(SINGLE_UPDATE_SQL);
    const durationMs = performance.now() - started;
    return { rows: result.rowCount ?? 0, batches: 1, durationMs, batchDurationsMs: [durationMs] };
  } finally {
    await client.end();
  }
}

/**
 * Naive batching: `WHERE id = ANY(ARRAY(SELECT id ... WHERE visibility IS NULL LIMIT n))`, each statement in its own
 * transaction, until one changes no row. With `synchronizeSeqscans: false` every batch's scan starts at the
 * table's first page, as it does for any table smaller than a quarter of shared_buffers (most tables on Aurora,
 * whose shared_buffers is most of the instance's memory); PostgreSQL's default lets a scan of a larger table start
 * where the previous one stopped, which hides the rescans.
 */
export async function naiveBatches(url: string, batchSize: number, synchronizeSeqscans: boolean): Promise<MigrateRun> {
  const client = new pg.Client({ connectionString: url, application_name: ENGINE_APPLICATION_NAME });
  await client.connect();
  try {
    if (!synchronizeSeqscans) await client.query('SET synchronize_seqscans = off');
    const sql = naiveBatchSql(batchSize);
    const durations: number[] = [];
    let rows = 0;
    const started = performance.now();
    for (;;) {
      const batchStart = performance.now();
      const result = await client.query(sql);
      const changed = result.rowCount ?? 0;
      if (changed === 0) break;
      durations.push(performance.now() - batchStart);
      rows += changed;
    }
    return { rows, batches: durations.length, durationMs: performance.now() - started, batchDurationsMs: durations };
  } finally {
    await client.end();
  }
}
