import pg from 'pg';
import { DEMO_MIGRATIONS, seedDemoDatabase } from '../../bin/local/demo-database.ts';
import { runLocalExecution } from '../../bin/local/run-local-execution.ts';
import { PgSqlClient } from '../../lambdas/core/index.ts';
import { STATE_NAMES } from '../../lambdas/core/workflow/state-names.ts';
import { DrainSource } from '../../lib/drain-source.ts';
import type { BenchServer } from '../lib/postgres.ts';
import { ratio } from '../lib/stats.ts';

export interface ExecutionRun {
  readonly rows: number;
  readonly status: string;
  /** StateEntered events: what Step Functions Standard bills. */
  readonly transitions: number;
  readonly migrateCalls: number;
  /** The migrate task and the Choice after it, once per call. */
  readonly loopTransitions: number;
  readonly otherTransitions: number;
  readonly batches: number;
  readonly rowsMigrated: number;
  /** Time spent in the migrate task, summed over its calls. */
  readonly migrateMs: number;
  readonly executionMs: number;
  readonly transitionsPerMigrateMinute: number;
  readonly loopTransitionsPerMigrateMinute: number;
  /** The fewest calls the migrate time allows: ceil(migrate time ÷ budget). */
  readonly minimumCalls: number;
}

export interface TransitionFigures {
  readonly migrateBudgetMs: number;
  readonly runs: readonly ExecutionRun[];
  /** Transitions at the largest size ÷ at the smallest, next to the same ratio for rows and for batches. */
  readonly transitionGrowth: number;
  readonly rowGrowth: number;
  readonly batchGrowth: number;
  /** Every run used at most one call more than its migrate time needs: transitions follow minutes, not rows. */
  readonly boundedByMinutes: boolean;
}

/**
 * Section 4: full local executions of the synthesized state machine with the demo release on freshly seeded
 * databases, the same migrate budget at every size; the drain gate watches sessions named `demo-app-old%`, of
 * which there are none, so it opens at its first check.
 */
export async function measureTransitions(
  server: BenchServer,
  sizes: readonly number[],
  migrateBudgetMs: number,
  log: (line: string) => void,
): Promise<TransitionFigures> {
  const runs: ExecutionRun[] = [];
  for (const rows of sizes) {
    const database = `bench_exec_${rows}`;
    await server.createDatabase(database);
    const url = server.url(database);
    const seeding = new PgSqlClient(url, { applicationName: 'emc-bench-admin' });
    try {
      await seedDemoDatabase(seeding, rows);
      await seeding.query('VACUUM ANALYZE images');
    } finally {
      await seeding.close();
    }
    await server.admin.query('CHECKPOINT');
    log(`  full execution on ${rows.toLocaleString('en-US')} rows (migrate budget ${migrateBudgetMs} ms)…`);
    const started = performance.now();
    const execution = await runLocalExecution({
      databaseUrl: url,
      migrationsDirectory: DEMO_MIGRATIONS,
      drainSource: DrainSource.databaseSessions('demo-app-old%'),
      input: {},
      executionName: `bench-${rows}`,
      settings: { migrateBudgetMs },
      waitMs: 50,
      retryMs: 50,
    });
    const executionMs = performance.now() - started;
    if (execution.status !== 'SUCCEEDED') {
      throw new Error(`the local execution on ${rows} rows ${execution.status}: ${execution.error ?? ''} ${execution.cause ?? ''}`);
    }
    const entered: string[] = [];
    let migrateMs = 0;
    let migrateEnteredAt: number | undefined;
    for (const event of execution.events) {
      if (event.type === 'StateEntered') {
        entered.push(event.state.name);
        if (event.state.name === STATE_NAMES.migrate) migrateEnteredAt = event.timestamp;
      } else if (event.type === 'StateExited' && event.state.name === STATE_NAMES.migrate && migrateEnteredAt !== undefined) {
        migrateMs += event.timestamp - migrateEnteredAt;
        migrateEnteredAt = undefined;
      }
    }
    const migrateCalls = entered.filter((name) => name === STATE_NAMES.migrate).length;
    // The state entered after each migrate call is the Choice that loops back to it.
    const loopStates = new Set([STATE_NAMES.migrate as string]);
    entered.forEach((name, i) => {
      if (name === STATE_NAMES.migrate && entered[i + 1]) loopStates.add(entered[i + 1]!);
    });
    const loopTransitions = entered.filter((name) => loopStates.has(name)).length;
    const batches = await migrateBatches(url);
    const output = execution.output as { rowsMigrated?: number };
    const minutes = migrateMs / 60_000;
    const run: ExecutionRun = {
      rows,
      status: execution.status,
      transitions: entered.length,
      migrateCalls,
      loopTransitions,
      otherTransitions: entered.length - loopTransitions,
      batches,
      rowsMigrated: output.rowsMigrated ?? 0,
      migrateMs,
      executionMs,
      transitionsPerMigrateMinute: entered.length / minutes,
      loopTransitionsPerMigrateMinute: loopTransitions / minutes,
      minimumCalls: Math.max(1, Math.ceil(migrateMs / migrateBudgetMs)),
    };
    runs.push(run);
    log(
      `  ${rows.toLocaleString('en-US')} rows: ${run.transitions} transitions, ${migrateCalls} migrate calls, ` +
        `${batches} batches, ${(migrateMs / 1000).toFixed(1)} s of migrate`,
    );
    await server.dropDatabase(database);
  }
  const first = runs[0]!;
  const last = runs[runs.length - 1]!;
  return {
    migrateBudgetMs,
    runs,
    transitionGrowth: ratio(last.transitions, first.transitions),
    rowGrowth: ratio(last.rows, first.rows),
    batchGrowth: ratio(last.batches, first.batches),
    boundedByMinutes: runs.every((r) => r.migrateCalls <= r.minimumCalls + 1),
  };
}

async function migrateBatches(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const result = await client.query<{ n: number }>('SELECT coalesce(sum(batches), 0)::int AS n FROM emc.migrate_progress');
    return result.rows[0]!.n;
  } finally {
    await client.end();
  }
}
