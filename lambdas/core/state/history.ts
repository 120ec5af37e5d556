import type { Step } from '../steps/step-kind.ts';
import type { SqlSession } from '../sql/sql-client.ts';
import { STATE_SCHEMA } from './schema.ts';

/** `restarted`: an operator's `restartSteps` decision reset a partly-run migrate step (the row's error says what was discarded). */
export type Outcome = 'running' | 'succeeded' | 'continued' | 'failed' | 'interrupted' | 'restarted';

export interface HistoryEntry {
  readonly runId: string;
  readonly stepId: string;
  readonly phase: string;
  readonly checksum: string;
  readonly startedAt: Date;
  readonly finishedAt: Date | undefined;
  readonly durationMs: number | undefined;
  readonly rowsAffected: number | undefined;
  readonly outcome: Outcome;
  readonly error: string | undefined;
}

/**
 * Writes a finished history row. Succeeded rows are written in the step's own transaction; failed rows after the
 * rollback, so a failure leaves its trace while the step's writes are gone.
 */
export async function recordHistory(
  session: SqlSession,
  entry: { runId: string; step: Step; startedAt: Date; rowsAffected?: number; outcome: Outcome; error?: string },
): Promise<void> {
  // Start and finish both come from this process's clock, so the duration is exact even if the clocks differ.
  const finishedAt = Date.now();
  await session.query(
    `INSERT INTO ${STATE_SCHEMA}.history
       (run_id, step_id, phase, checksum, started_at, finished_at, duration_ms, rows_affected, outcome, error)
     VALUES (:run, :step, :phase, :checksum, to_timestamp(:started / 1000.0), to_timestamp(:finished / 1000.0),
             :duration, :rows, :outcome, :error)`,
    {
      run: entry.runId,
      step: entry.step.id,
      phase: entry.step.phase,
      checksum: entry.step.checksum,
      started: entry.startedAt.getTime(),
      finished: finishedAt,
      duration: finishedAt - entry.startedAt.getTime(),
      rows: entry.rowsAffected ?? null,
      outcome: entry.outcome,
      error: entry.error ?? null,
    },
  );
}

/** For steps outside a transaction: a `running` row written before the first statement, finished afterwards. */
export async function startHistory(session: SqlSession, runId: string, step: Step): Promise<number> {
  // A previous attempt that crashed left its row `running`: it did not finish, say so.
  await session.query(
    `UPDATE ${STATE_SCHEMA}.history SET outcome = 'interrupted' WHERE step_id = :step AND outcome = 'running'`,
    { step: step.id },
  );
  const result = await session.query<{ id: string }>(
    `INSERT INTO ${STATE_SCHEMA}.history (run_id, step_id, phase, checksum, started_at, outcome)
     VALUES (:run, :step, :phase, :checksum, clock_timestamp(), 'running') RETURNING id`,
    { run: runId, step: step.id, phase: step.phase, checksum: step.checksum },
  );
  return Number(result.rows[0]!.id);
}

export async function finishHistory(
  session: SqlSession,
  id: number,
  outcome: Exclude<Outcome, 'running'>,
  error?: string,
): Promise<void> {
  await session.query(
    `UPDATE ${STATE_SCHEMA}.history
     SET outcome = :outcome, error = :error, finished_at = clock_timestamp(),
         duration_ms = (extract(epoch FROM clock_timestamp() - started_at) * 1000)::bigint
     WHERE id = :id`,
    { id, outcome, error: error ?? null },
  );
}

/**
 * Rows per read of the history table. The RDS Data API returns at most 1 MiB per call; a history row is well under
 * 1 KiB even with a long error message, so pages of this size always fit however long the history grows.
 */
export const HISTORY_PAGE_SIZE = 500;

/** History rows, oldest first; `runId` narrows to one run. Read page by page (keyset on id). */
export async function readHistory(session: SqlSession, runId?: string): Promise<HistoryEntry[]> {
  const entries: HistoryEntry[] = [];
  let after = 0;
  for (;;) {
    const page = await session.query<{
      id: string;
      run_id: string;
      step_id: string;
      phase: string;
      checksum: string;
      started_ms: number;
      finished_ms: number | null;
      duration_ms: string | null;
      rows_affected: string | null;
      outcome: Outcome;
      error: string | null;
    }>(
      `SELECT id, run_id, step_id, phase, checksum,
              (extract(epoch FROM started_at) * 1000)::float8 AS started_ms,
              (extract(epoch FROM finished_at) * 1000)::float8 AS finished_ms,
              duration_ms, rows_affected, outcome, left(error, 4000) AS error
       FROM ${STATE_SCHEMA}.history
       WHERE id > :after AND (:run::text IS NULL OR run_id = :run)
       ORDER BY id
       LIMIT :limit`,
      { run: runId ?? null, after, limit: HISTORY_PAGE_SIZE },
    );
    for (const r of page.rows) {
      entries.push({
        runId: r.run_id,
        stepId: r.step_id,
        phase: r.phase,
        checksum: r.checksum,
        startedAt: new Date(r.started_ms),
        finishedAt: r.finished_ms === null ? undefined : new Date(r.finished_ms),
        durationMs: r.duration_ms === null ? undefined : Number(r.duration_ms),
        rowsAffected: r.rows_affected === null ? undefined : Number(r.rows_affected),
        outcome: r.outcome,
        error: r.error ?? undefined,
      });
    }
    if (page.rows.length < HISTORY_PAGE_SIZE) return entries;
    after = Number(page.rows.at(-1)!.id);
  }
}
