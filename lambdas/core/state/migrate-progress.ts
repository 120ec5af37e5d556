import type { SqlSession } from '../sql/sql-client.ts';
import { STATE_SCHEMA } from './schema.ts';

/**
 * The `migrate_progress` table, read and written here only (the batch's own cursor update excepted: it belongs to
 * the batch's transaction, `migrate/run-batch.ts`). One row a migrate step: where its batches got to, which pass, and
 * the file and strategy they ran with.
 */
export interface ProgressRow {
  readonly stepId: string;
  /** Last key done (keyset), as text; undefined before the first batch of a pass. */
  readonly cursor: string | undefined;
  /** A step restarts with a new pass when its pending query still finds rows after it reached the end. */
  readonly pass: number;
  readonly rowsDone: number;
  readonly keysScanned: number;
  readonly batches: number;
  readonly finished: boolean;
  /** The step file's checksum its batches ran with; undefined for a row written by an earlier release of the tool. */
  readonly checksum: string | undefined;
  /** The batch strategy its batches ran with, as the directive says it (`keyset table=images key=id`). */
  readonly strategy: string | undefined;
  /** Rows changed since the current pass began. */
  readonly passRows: number;
}

/**
 * A row as read, through `row_to_json` so that a schema of an earlier version (read-only callers do not upgrade it)
 * reads too: columns it lacks are absent.
 */
type ProgressRowJson = {
  step_id: string;
  cursor: string | null;
  pass: number;
  rows_done: number;
  keys_scanned: number;
  batches: number;
  finished: boolean;
  checksum?: string | null;
  strategy?: string | null;
  pass_rows?: number;
};

const PROGRESS_ROWS = `SELECT row_to_json(p)::text AS row FROM ${STATE_SCHEMA}.migrate_progress p`;

/** Every step's row, by step id. The state schema must exist. */
export async function readAllProgress(session: SqlSession): Promise<Map<string, ProgressRow>> {
  const progress = await session.query<{ row: string }>(PROGRESS_ROWS);
  return new Map(progress.rows.map((r) => toProgress(r.row)).map((p) => [p.stepId, p]));
}

export async function readProgress(session: SqlSession, stepId: string): Promise<ProgressRow | undefined> {
  const result = await session.query<{ row: string }>(`${PROGRESS_ROWS} WHERE step_id = :step`, { step: stepId });
  return result.rows[0] && toProgress(result.rows[0].row);
}

function toProgress(json: string): ProgressRow {
  const r = JSON.parse(json) as ProgressRowJson;
  return {
    stepId: r.step_id,
    cursor: r.cursor ?? undefined,
    pass: Number(r.pass),
    rowsDone: Number(r.rows_done),
    keysScanned: Number(r.keys_scanned),
    batches: Number(r.batches),
    finished: r.finished,
    checksum: r.checksum ?? undefined,
    strategy: r.strategy ?? undefined,
    passRows: Number(r.pass_rows ?? 0),
  };
}

/**
 * The step's row before its batches of this call, created if absent. A row takes the file's checksum (and strategy)
 * while it has no committed batch, or when it has none recorded: inspect refused every unapplied step whose batches
 * ran with another file or an unrecorded one (unless restartSteps reset it), so that is an applied step reopened by
 * an earlier release of the tool, whose file the drift check compared with the applied one.
 */
export async function startProgress(
  tx: SqlSession,
  step: { readonly id: string; readonly checksum: string },
  strategy: string,
): Promise<ProgressRow> {
  await tx.query(
    `INSERT INTO ${STATE_SCHEMA}.migrate_progress AS p (step_id, checksum, strategy) VALUES (:step, :checksum, :strategy)
     ON CONFLICT (step_id) DO UPDATE SET checksum = excluded.checksum, strategy = excluded.strategy
     WHERE (p.batches = 0 OR p.checksum IS NULL) AND p.checksum IS DISTINCT FROM excluded.checksum`,
    { step: step.id, checksum: step.checksum, strategy },
  );
  return (await readProgress(tx, step.id))!;
}

/** A finished step gets another series of passes from the first key (rows were found pending again). */
export async function reopenProgress(tx: SqlSession, stepId: string): Promise<void> {
  await tx.query(
    `UPDATE ${STATE_SCHEMA}.migrate_progress SET finished = false, cursor = NULL, pass = 1, pass_rows = 0, updated_at = now()
     WHERE step_id = :step`,
    { step: stepId },
  );
}

/**
 * The operator's `restartSteps` decision: progress starts again from the first key with the new file. Only progress
 * still as it was read (the old checksum, the same number of batches) is reset; returns whether it was.
 */
export async function restartProgress(
  tx: SqlSession,
  step: { readonly id: string; readonly checksum: string },
  strategy: string,
  seen: { readonly checksum: string | undefined; readonly batches: number },
): Promise<boolean> {
  const reset = await tx.query(
    `UPDATE ${STATE_SCHEMA}.migrate_progress
     SET cursor = NULL, pass = 1, rows_done = 0, keys_scanned = 0, batches = 0, pass_rows = 0,
         checksum = :checksum, strategy = :strategy, started_at = now(), updated_at = now()
     WHERE step_id = :step AND checksum IS NOT DISTINCT FROM :previous AND batches = :batches`,
    { step: step.id, checksum: step.checksum, strategy, previous: seen.checksum ?? null, batches: seen.batches },
  );
  return reset.rowCount === 1;
}

/** The pass ended with rows pending: pass number `pass` starts from the first key. */
export async function startPass(tx: SqlSession, stepId: string, pass: number): Promise<void> {
  await tx.query(
    `UPDATE ${STATE_SCHEMA}.migrate_progress SET cursor = NULL, pass = :pass, pass_rows = 0, updated_at = now() WHERE step_id = :step`,
    { step: stepId, pass },
  );
}

export async function markFinished(tx: SqlSession, stepId: string): Promise<void> {
  await tx.query(`UPDATE ${STATE_SCHEMA}.migrate_progress SET finished = true, updated_at = now() WHERE step_id = :step`, {
    step: stepId,
  });
}
