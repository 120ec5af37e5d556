import type { Phase, Step } from '../catalog/step.ts';
import type { SqlSession } from '../sql/sql-client.ts';
import { formatVersion, type CompositeVersion } from './composite-version.ts';
import { STATE_SCHEMA, stateSchemaExists } from './schema.ts';

export interface AppliedStep {
  readonly stepId: string;
  readonly phase: Phase;
  readonly checksum: string;
  readonly runId: string;
}

export interface MigrateProgress {
  readonly stepId: string;
  /** Last key done (keyset), as text; undefined before the first batch of a pass. */
  readonly cursor: string | undefined;
  /** A keyset step restarts with a new pass when its pending query still finds rows after it reached the end. */
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

/** Everything the engine knows about a database, read in one go. */
export interface DatabaseState {
  readonly version: CompositeVersion;
  /** Applied steps in the order they were applied. */
  readonly applied: readonly AppliedStep[];
  readonly progress: ReadonlyMap<string, MigrateProgress>;
}

export const EMPTY_STATE: DatabaseState = {
  version: { expand: undefined, contract: undefined },
  applied: [],
  progress: new Map(),
};

/**
 * A migrate_progress row as read, through `row_to_json` so that a schema of an earlier version (read-only callers do
 * not upgrade it) reads too: columns it lacks are absent.
 */
type ProgressRow = {
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

/** Reads the state; a database the tool never touched reads as empty (and is not changed). */
export async function readState(session: SqlSession): Promise<DatabaseState> {
  if (!(await stateSchemaExists(session))) return EMPTY_STATE;
  const version = await session.query<{ expand_step: string | null; contract_step: string | null }>(
    `SELECT expand_step, contract_step FROM ${STATE_SCHEMA}.version`,
  );
  const applied = await session.query<{ step_id: string; phase: Phase; checksum: string; run_id: string }>(
    `SELECT step_id, phase, checksum, run_id FROM ${STATE_SCHEMA}.applied_step ORDER BY applied_at, step_id`,
  );
  const progress = await session.query<{ row: string }>(PROGRESS_ROWS);
  const row = version.rows[0];
  return {
    version: { expand: row?.expand_step ?? undefined, contract: row?.contract_step ?? undefined },
    applied: applied.rows.map((r) => ({ stepId: r.step_id, phase: r.phase, checksum: r.checksum, runId: r.run_id })),
    progress: new Map(progress.rows.map((r) => toProgress(r.row)).map((p) => [p.stepId, p])),
  };
}

export async function readProgress(session: SqlSession, stepId: string): Promise<MigrateProgress | undefined> {
  const result = await session.query<{ row: string }>(`${PROGRESS_ROWS} WHERE step_id = :step`, { step: stepId });
  return result.rows[0] && toProgress(result.rows[0].row);
}

function toProgress(json: string): MigrateProgress {
  const r = JSON.parse(json) as ProgressRow;
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
 * Records `step` as applied and moves the composite version. Callers run this in the step's own transaction, so
 * the version never says a step ran that did not commit, nor misses one that did.
 */
export async function recordApplied(tx: SqlSession, step: Step, runId: string): Promise<CompositeVersion> {
  await tx.query(
    `INSERT INTO ${STATE_SCHEMA}.applied_step (step_id, release, phase, number, checksum, run_id)
     VALUES (:id, :release, :phase, :number, :checksum, :run)`,
    { id: step.id, release: step.release, phase: step.phase, number: step.number, checksum: step.checksum, run: runId },
  );
  const current = await tx.query<{ expand_step: string | null; contract_step: string | null }>(
    `SELECT expand_step, contract_step FROM ${STATE_SCHEMA}.version FOR UPDATE`,
  );
  const row = current.rows[0];
  const version: CompositeVersion = {
    expand: step.phase === 'expand' ? step.id : (row?.expand_step ?? undefined),
    contract: step.phase === 'contract' ? step.id : (row?.contract_step ?? undefined),
  };
  await tx.query(
    `INSERT INTO ${STATE_SCHEMA}.version AS v (singleton, expand_step, contract_step, composite, updated_at)
     VALUES (true, :expand, :contract, :composite, now())
     ON CONFLICT (singleton) DO UPDATE
       SET expand_step = excluded.expand_step, contract_step = excluded.contract_step,
           composite = excluded.composite, updated_at = now()`,
    { expand: version.expand ?? null, contract: version.contract ?? null, composite: formatVersion(version) },
  );
  return version;
}

export async function isApplied(session: SqlSession, stepId: string): Promise<boolean> {
  const result = await session.query(`SELECT 1 FROM ${STATE_SCHEMA}.applied_step WHERE step_id = :step`, { step: stepId });
  return result.rowCount > 0;
}
