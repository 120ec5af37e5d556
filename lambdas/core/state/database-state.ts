import type { Phase } from '../catalog/step.ts';
import type { Step } from '../steps/step-kind.ts';
import type { SqlSession } from '../sql/sql-client.ts';
import { formatVersion, type CompositeVersion } from './composite-version.ts';
import { leaseFromJson, LEASE_JSON, type Lease } from './lease.ts';
import { progressFromJson, type ProgressRow } from './migrate-progress.ts';
import { STATE_SCHEMA, stateSchemaExists } from './schema.ts';

export interface AppliedStep {
  readonly stepId: string;
  readonly phase: Phase;
  readonly checksum: string;
  readonly runId: string;
}

/** Everything the engine knows about a database, read in one go. */
export interface DatabaseState {
  readonly version: CompositeVersion;
  /** Applied steps in the order they were applied. */
  readonly applied: readonly AppliedStep[];
  readonly progress: ReadonlyMap<string, ProgressRow>;
}

export const EMPTY_STATE: DatabaseState = {
  version: { expand: undefined, contract: undefined },
  applied: [],
  progress: new Map(),
};

/** Reads the state; a database the tool never touched reads as empty (and is not changed). */
export async function readState(session: SqlSession): Promise<DatabaseState> {
  if (!(await stateSchemaExists(session))) return EMPTY_STATE;
  return (await readStateAndLease(session)).state;
}

/**
 * The state and the live lease (undefined when none is held), in ONE statement: one snapshot, and one RDS Data API
 * call when it runs on its own. The state schema must exist. Progress rows are read through `row_to_json`, so a
 * schema of an earlier version (read-only callers do not upgrade it) reads too.
 */
export async function readStateAndLease(session: SqlSession): Promise<{ state: DatabaseState; lease: Lease | undefined }> {
  const result = await session.query<{ state: string }>(
    `SELECT json_build_object(
       'version', (SELECT json_build_object('expand_step', expand_step, 'contract_step', contract_step) FROM ${STATE_SCHEMA}.version),
       'applied', (SELECT coalesce(json_agg(json_build_object('step_id', step_id, 'phase', phase, 'checksum', checksum, 'run_id', run_id)
                                            ORDER BY applied_at, step_id), '[]')
                   FROM ${STATE_SCHEMA}.applied_step),
       'progress', (SELECT coalesce(json_agg(row_to_json(p)::text), '[]') FROM ${STATE_SCHEMA}.migrate_progress p),
       'lease', ${LEASE_JSON})::text AS state`,
  );
  const read = JSON.parse(result.rows[0]!.state) as {
    version: { expand_step: string | null; contract_step: string | null } | null;
    applied: { step_id: string; phase: Phase; checksum: string; run_id: string }[];
    progress: string[];
    lease: Parameters<typeof leaseFromJson>[0];
  };
  return {
    state: {
      version: { expand: read.version?.expand_step ?? undefined, contract: read.version?.contract_step ?? undefined },
      applied: read.applied.map((r) => ({ stepId: r.step_id, phase: r.phase, checksum: r.checksum, runId: r.run_id })),
      progress: new Map(read.progress.map(progressFromJson).map((p) => [p.stepId, p])),
    },
    lease: leaseFromJson(read.lease),
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
