import type { SqlSession } from '../sql/sql-client.ts';
import type { CompositeVersion } from './composite-version.ts';
import type { LeaseHold } from './lease.ts';
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
  return new Map(progress.rows.map((r) => progressFromJson(r.row)).map((p) => [p.stepId, p]));
}

export async function readProgress(session: SqlSession, stepId: string): Promise<ProgressRow | undefined> {
  const result = await session.query<{ row: string }>(`${PROGRESS_ROWS} WHERE step_id = :step`, { step: stepId });
  return result.rows[0] && progressFromJson(result.rows[0].row);
}

/** A row as `row_to_json` gives it (as text). */
export function progressFromJson(json: string): ProgressRow {
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

// Every argument cast: the Data API sends strings as varchar, integers as bigint and NULL untyped, and a function is
// found by its argument types.
const HOLD = `CAST(:owner AS text), CAST(:ttl AS integer), CAST(:lock_ms AS integer)`;
const holdParams = (lease: LeaseHold) => ({ owner: lease.owner, ttl: lease.ttlSeconds, lock_ms: lease.lockTimeoutMs });

/**
 * The step's row before its batches of this call, created if absent, in one statement that holds the lease first
 * (`emc.start_migration`, state/schema.ts, says which checksum the row takes).
 */
export async function startProgress(
  session: SqlSession,
  lease: LeaseHold,
  step: { readonly id: string; readonly checksum: string },
  strategy: string,
): Promise<ProgressRow> {
  const result = await session.query<{ row: string }>(
    `SELECT ${STATE_SCHEMA}.start_migration(${HOLD}, CAST(:step AS text), CAST(:checksum AS text), CAST(:strategy AS text)) AS row`,
    { ...holdParams(lease), step: step.id, checksum: step.checksum, strategy },
  );
  return progressFromJson(result.rows[0]!.row);
}

/**
 * A migrate step found finished (its pending query found no row): its progress marked finished, the step recorded
 * applied and its `succeeded` history row, in one statement that holds the lease first (`emc.finish_migration`).
 * Returns the composite version then (a migrate step moves neither head).
 */
export async function finishMigration(
  session: SqlSession,
  lease: LeaseHold,
  entry: {
    readonly step: { readonly id: string; readonly release: string; readonly number: number; readonly checksum: string };
    readonly runId: string;
    readonly startedAt: Date;
    readonly rowsAffected: number;
  },
): Promise<CompositeVersion> {
  const result = await session.query<{ expand_head: string | null; contract_head: string | null }>(
    `SELECT expand_head, contract_head FROM ${STATE_SCHEMA}.finish_migration(${HOLD},
       CAST(:step AS text), CAST(:release AS text), CAST(:number AS integer), CAST(:checksum AS text), CAST(:run AS text),
       CAST(:started AS bigint), CAST(:finished AS bigint), CAST(:rows AS bigint))`,
    {
      ...holdParams(lease),
      step: entry.step.id,
      release: entry.step.release,
      number: entry.step.number,
      checksum: entry.step.checksum,
      run: entry.runId,
      started: entry.startedAt.getTime(),
      // Start and finish both come from this process's clock, as recordHistory takes them.
      finished: Date.now(),
      rows: entry.rowsAffected,
    },
  );
  const row = result.rows[0]!;
  return { expand: row.expand_head ?? undefined, contract: row.contract_head ?? undefined };
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
