import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';
import { seedDemoDatabase } from '../../bin/local/demo-database.ts';
import { loadCatalog } from '../../lambdas/core/catalog/load-catalog.ts';
import type { Catalog } from '../../lambdas/core/catalog/step.ts';
import type { SettingsOverrides } from '../../lambdas/core/settings.ts';
import { PgSqlClient } from '../../lambdas/core/sql/pg-client.ts';
import { reportFailure } from '../../lambdas/core/workflow/failure-report.ts';
import { DEMO_MIGRATIONS } from './catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { dumpSchema, type SchemaDump } from './database-dump.ts';
import { FaultInjectingSqlClient, type KillMode, type SentStatement } from './fault-client.ts';
import type { Figure } from './reliability-figures.ts';
import { runWorkflow, type UpgradePhase } from './engine.ts';

/**
 * The crash-at-every-statement experiment on the demo release bexar: a full upgrade (start, expand, migrate to the
 * end, contract, finish) of a seeded 300-row table with 100-row batches is killed at statement k, for every k of an
 * uninterrupted run, then run again from scratch by a new client; the result must be exactly what an uninterrupted
 * run gives.
 *
 * Recovery after a kill, as the deployed state machine does it:
 * - `before` kills: every task's Catch leads to "Record failure", which releases the dead run's lease; the operator
 *   then starts a NEW execution (new run id). The failure path is run here with the real `reportFailure`.
 * - `after` kills: the same execution retried (a Lambda retry keeps the execution ARN, i.e. the run id). The lease
 *   is still this run's, so taking it again renews it; no waiting and no release needed.
 * Waiting for the lease to expire (a holder that died with no failure path) is shown in reliability-concurrency.
 */

export const ROWS = 300;
// Fixed 100-row batches (targetBatchMs 0): the kill points are the same in every run.
export const SETTINGS: SettingsOverrides = { batchSize: 100, targetBatchMs: 0, batchPauseMs: 0 };
export const FINAL_VERSION = 'bexar_expand03, bexar_contract03';
/** Kill points tried at once, each on a database of its own. */
const CONCURRENCY = 4;

/** Counts every change of visibility, owner_id and name per row: a row processed twice shows a count of 2. */
const CHANGE_COUNTER = [
  `CREATE SCHEMA testctl`,
  `CREATE TABLE testctl.changes (id bigint NOT NULL, col text NOT NULL, changes int NOT NULL, PRIMARY KEY (id, col))`,
  `CREATE FUNCTION testctl.count_changes() RETURNS trigger LANGUAGE plpgsql AS $$
   DECLARE c text;
   BEGIN
     FOREACH c IN ARRAY ARRAY['visibility', 'owner_id', 'name'] LOOP
       IF (to_jsonb(NEW) -> c) IS DISTINCT FROM (to_jsonb(OLD) -> c) THEN
         INSERT INTO testctl.changes AS x (id, col, changes) VALUES (NEW.id, c, 1)
         ON CONFLICT (id, col) DO UPDATE SET changes = x.changes + 1;
       END IF;
     END LOOP;
     RETURN NULL;
   END $$`,
  `CREATE TRIGGER zz_count_changes AFTER UPDATE ON images FOR EACH ROW EXECUTE FUNCTION testctl.count_changes()`,
];

export interface Reference {
  readonly catalog: Catalog;
  /** The statements of an uninterrupted run, in order. */
  readonly statements: readonly SentStatement[];
  readonly schema: SchemaDump;
}

/**
 * A database reused for one kill point after another, reset in between to the seeded state (the application's
 * schema, the tool's schema and the change counter dropped and created again): much cheaper than a new database for
 * each of several hundred kill points. `synchronous_commit = off` spares a WAL flush per commit; it changes nothing
 * for a crashed connection (only a crash of the whole server could lose a committed transaction).
 */
export class Lane {
  private constructor(readonly db: TestDatabase) {}

  static async open(): Promise<Lane> {
    const created = await createTestDatabase();
    // For every session opened from now on: the engine clients of each kill point, and this lane's own pool.
    await created.pool.query(`ALTER DATABASE ${created.name} SET synchronous_commit = off`);
    const pool = new pg.Pool({ connectionString: created.url, max: 2 });
    pool.on('error', () => {});
    return new Lane({
      ...created,
      pool,
      drop: async () => {
        await pool.end();
        await created.drop();
      },
    });
  }

  async reset(): Promise<void> {
    for (const sql of [
      `DROP SCHEMA IF EXISTS emc CASCADE`,
      `DROP SCHEMA IF EXISTS testctl CASCADE`,
      `DROP SCHEMA IF EXISTS public CASCADE`,
      `CREATE SCHEMA public`,
    ]) {
      await this.db.pool.query(sql);
    }
    await seedDemoDatabase(this.db.client, ROWS);
    for (const sql of CHANGE_COUNTER) await this.db.pool.query(sql);
  }

  close(): Promise<void> {
    return this.db.drop();
  }
}

export async function prepareReference(): Promise<Reference> {
  const catalog = await loadCatalog(DEMO_MIGRATIONS);
  const lane = await Lane.open();
  try {
    await lane.reset();
    const counting = new FaultInjectingSqlClient(new PgSqlClient(lane.db.url));
    await runWorkflow(counting, catalog, { runId: 'reference', defaults: SETTINGS, onPhase: (p) => (counting.label = p) });
    await counting.close();
    const schema = await dumpSchema(lane.db.pool);
    const problems = await convergenceProblems(lane.db, schema, catalog);
    if (problems.length > 0) throw new Error(`the uninterrupted run itself is wrong: ${problems.join('; ')}`);
    return { catalog, statements: counting.sent, schema };
  } finally {
    await lane.close();
  }
}

export interface KillOutcome {
  readonly at: number;
  readonly mode: KillMode;
  readonly statement: SentStatement;
  /** The error the killed run ended with (its class name). */
  readonly error: string;
  readonly problems: readonly string[];
}

/**
 * Kills a run at every statement boundary `mode` reaches (see `FaultInjectingSqlClient.boundaries`), one at a time,
 * recovers, and checks the result.
 */
export async function killAtEveryBoundary(reference: Reference, mode: KillMode): Promise<KillOutcome[]> {
  const lanes = await Promise.all(Array.from({ length: CONCURRENCY }, () => Lane.open()));
  const free = [...lanes];
  try {
    return await mapWithConcurrency(
      FaultInjectingSqlClient.boundaries(reference.statements, mode).map((s) => s.n),
      CONCURRENCY,
      async (at) => {
        const lane = free.pop()!;
        try {
          await lane.reset();
          return await killAndRecover(lane.db, reference, mode, at);
        } finally {
          free.push(lane);
        }
      },
    );
  } finally {
    await Promise.all(lanes.map((l) => l.close()));
  }
}

async function killAndRecover(db: TestDatabase, reference: Reference, mode: KillMode, at: number): Promise<KillOutcome> {
  const statement = reference.statements[at - 1]!;
  const problems: string[] = [];
  let error = '(none)';
  const deadRun = `dead-run-${mode}-${at}`;
  const faulty = new FaultInjectingSqlClient(new PgSqlClient(db.url), { at, mode });
  let failedIn: UpgradePhase = 'start';
  try {
    await runWorkflow(faulty, reference.catalog, {
      runId: deadRun,
      defaults: SETTINGS,
      onPhase: (p) => {
        faulty.label = p;
        failedIn = p;
      },
    });
    problems.push('the killed run completed as if nothing had happened');
  } catch (e) {
    error = e instanceof Error ? e.name : typeof e;
    if (faulty.killedAt === undefined) problems.push(`the run failed before the kill point: ${(e as Error).message}`);
    if (/fault injection/.test((e as Error).message)) problems.push((e as Error).message);
  } finally {
    await faulty.close();
  }
  if (faulty.killedAt && faulty.killedAt.sql !== statement.sql) {
    problems.push(`statement ${at} was "${faulty.killedAt.sql}", not "${statement.sql}" as in the uninterrupted run`);
  }

  const fresh = new PgSqlClient(db.url);
  try {
    let runId = deadRun;
    if (mode === 'before') {
      const task = failedIn as UpgradePhase;
      await reportFailure(fresh, { runId: deadRun, failedIn: { [task]: { Error: error, Cause: 'killed' } } });
      runId = `recovery-${at}`;
    }
    const summary = await runWorkflow(fresh, reference.catalog, { runId, defaults: SETTINGS });
    if (summary.versionAfter !== FINAL_VERSION) problems.push(`recovery ended at ${summary.versionAfter}`);
  } catch (e) {
    problems.push(`recovery failed: ${(e as Error).name}: ${(e as Error).message}`);
  } finally {
    await fresh.close();
  }
  problems.push(...(await convergenceProblems(db, reference.schema, reference.catalog)));
  return { at, mode, statement, error, problems };
}

/** Everything an uninterrupted run guarantees, as a list of what is not so (empty: converged). */
export async function convergenceProblems(db: TestDatabase, schema: SchemaDump, catalog: Catalog): Promise<string[]> {
  const problems: string[] = [];
  const q = async <R>(sql: string) => (await db.pool.query(sql)).rows as R[];

  const version = await q<{ composite: string }>(`SELECT composite FROM emc.version`);
  if (version[0]?.composite !== FINAL_VERSION) problems.push(`version is ${version[0]?.composite ?? 'missing'}`);

  const actual = await dumpSchema(db.pool);
  for (const key of Object.keys(schema) as (keyof SchemaDump)[]) {
    if (!isDeepStrictEqual(actual[key], schema[key])) problems.push(`schema differs in ${key}: ${JSON.stringify(actual[key])}`);
  }

  // Every row as the seed formula (demo/seed.sql) says, in the new release's columns.
  const rows = await q<{ id: string; name: string; visibility: string; owner_id: string }>(
    `SELECT id::text, name, visibility, owner_id FROM images ORDER BY id`,
  );
  if (rows.length !== ROWS) problems.push(`${rows.length} rows instead of ${ROWS}`);
  const wrong = rows.filter((r) => {
    const g = Number(r.id);
    return r.name !== `image-${g}` || r.visibility !== (g % 3 === 0 ? 'public' : 'private') || r.owner_id !== `tenant-${g % 500}`;
  });
  if (wrong.length > 0) problems.push(`${wrong.length} wrong rows, e.g. ${JSON.stringify(wrong[0])}`);

  // Each backfill changed every row exactly once, the trim every padded name exactly once.
  const changes = await q<{ col: string; rows: number; total: number }>(
    `SELECT col, count(*)::int AS rows, sum(changes)::int AS total FROM testctl.changes GROUP BY col ORDER BY col`,
  );
  const expectedChanges = [
    { col: 'name', rows: ROWS / 10, total: ROWS / 10 },
    { col: 'owner_id', rows: ROWS, total: ROWS },
    { col: 'visibility', rows: ROWS, total: ROWS },
  ];
  if (!isDeepStrictEqual(changes, expectedChanges)) problems.push(`row changes ${JSON.stringify(changes)}`);

  const progress = await q<{ step_id: string; rows_done: number; finished: boolean }>(
    `SELECT step_id, rows_done::int, finished FROM emc.migrate_progress ORDER BY step_id`,
  );
  const expectedProgress = [
    { step_id: 'bexar_migrate01', rows_done: ROWS, finished: true },
    { step_id: 'bexar_migrate02', rows_done: ROWS, finished: true },
    { step_id: 'bexar_migrate03', rows_done: ROWS / 10, finished: true },
  ];
  if (!isDeepStrictEqual(progress, expectedProgress)) problems.push(`migrate progress ${JSON.stringify(progress)}`);

  const applied = await q<{ step_id: string }>(`SELECT step_id FROM emc.applied_step ORDER BY applied_at, step_id`);
  const appliedIds = applied.map((a) => a.step_id);
  const catalogIds = catalog.steps.map((s) => s.id);
  if (!isDeepStrictEqual(appliedIds, catalogIds)) problems.push(`applied steps ${appliedIds.join(', ')}`);

  const leases = await q<{ owner: string }>(`SELECT owner FROM emc.lease`);
  if (leases.length > 0) problems.push(`lease still held by ${leases[0]!.owner}`);
  const running = await q<{ step_id: string }>(`SELECT step_id FROM emc.history WHERE outcome = 'running'`);
  if (running.length > 0) problems.push(`history rows still running: ${running.map((r) => r.step_id).join(', ')}`);
  return problems;
}

/** Kill points per workflow task, e.g. "start 12, expand 31, ...". */
export function perPhase(statements: readonly SentStatement[]): string {
  const counts = new Map<string, number>();
  for (const s of statements) counts.set(s.label, (counts.get(s.label) ?? 0) + 1);
  return [...counts].map(([label, n]) => `${label} ${n}`).join(', ');
}

/** The figures line of a kill experiment and the kill points that did not converge, one line each. */
export function describeKillOutcomes(
  reference: Reference,
  outcomes: readonly KillOutcome[],
  check: string,
): { figure: Figure; failures: string[] } {
  const failed = outcomes.filter((o) => o.problems.length > 0);
  const errors = new Map<string, number>();
  for (const o of outcomes) errors.set(o.error, (errors.get(o.error) ?? 0) + 1);
  const inTransactions = reference.statements.filter((s) => s.inTransaction).length;
  const transactions = new Set(reference.statements.flatMap((s) => (s.transaction === undefined ? [] : [s.transaction]))).size;
  return {
    figure: {
      check: `${check} (${ROWS} seeded rows, ${SETTINGS.batchSize}-row batches)`,
      tried: outcomes.length,
      passed: outcomes.length - failed.length,
      detail:
        `an uninterrupted run sends ${reference.statements.length} statements (${perPhase(reference.statements)}), ` +
        `${inTransactions} of them in ${transactions} transactions; kill points by task: ${perPhase(outcomes.map((o) => o.statement))}; ` +
        `the killed runs ended with ${[...errors].map(([name, n]) => `${name} ×${n}`).join(', ')}`,
    },
    failures: failed.map((o) => `#${o.at} [${o.statement.label}] ${o.statement.sql}: ${o.problems.join('; ')}`),
  };
}

/** Runs `work` over `items` with at most `limit` at a time; results in the items' order. */
async function mapWithConcurrency<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results: R[] = new Array(items.length);
  let next = 0;
  const lanes = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  });
  await Promise.all(lanes);
  return results;
}
