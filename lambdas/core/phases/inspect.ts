import { stepsUpTo, type Catalog, type Phase, type StepOfPhase } from '../catalog/step.ts';
import { CatalogOrderError, DatabaseAheadError, DriftError, InputError, MigrateStepChangedError } from '../errors.ts';
import type { SqlSession } from '../sql/sql-client.ts';
import { formatVersion } from '../state/composite-version.ts';
import { readState, type DatabaseState } from '../state/database-state.ts';

/** Where a database stands against the catalog, for one target release. */
export interface Inspection {
  readonly target: string;
  readonly state: DatabaseState;
  readonly versionText: string;
  /** Steps still to run up to the target, per phase, in order. */
  readonly pending: { readonly [P in Phase]: readonly StepOfPhase<P>[] };
}

/**
 * Reads the database state and checks it against the catalog before anything runs: an unknown target release,
 * steps the code does not know (a newer database), applied files that changed (drift), and applied steps that are
 * not a prefix of the catalog (a step inserted before an applied one) are refused. Read-only.
 */
export async function inspect(session: SqlSession, catalog: Catalog, target?: string): Promise<Inspection> {
  resolveTarget(catalog, target);
  return inspectState(await readState(session), catalog, target);
}

/** `inspect` of a state already read. */
export function inspectState(state: DatabaseState, catalog: Catalog, target?: string): Inspection {
  const release = resolveTarget(catalog, target);
  const byId = new Map(catalog.steps.map((s) => [s.id, s]));

  const unknown = state.applied.filter((a) => !byId.has(a.stepId)).map((a) => a.stepId);
  if (unknown.length > 0) {
    throw new DatabaseAheadError(
      `The database has applied steps this code does not ship: ${unknown.join(', ')} (database version ${formatVersion(state.version)}). It is newer than this release of the migrations; downgrades are not supported.`,
    );
  }
  const drifted = state.applied.flatMap((a) => {
    const step = byId.get(a.stepId)!;
    return step.checksum === a.checksum ? [] : [{ stepId: a.stepId, appliedChecksum: a.checksum, fileChecksum: step.checksum }];
  });
  if (drifted.length > 0) throw new DriftError(drifted);

  const appliedIds = new Set(state.applied.map((a) => a.stepId));
  for (const phase of ['expand', 'migrate', 'contract'] as const) {
    const all = catalog.steps.filter((s) => s.phase === phase);
    const lastApplied = all.findLastIndex((s) => appliedIds.has(s.id));
    const gap = lastApplied < 0 ? undefined : all.slice(0, lastApplied).find((s) => !appliedIds.has(s.id));
    if (gap) {
      throw new CatalogOrderError(
        `Step ${gap.id} (${gap.file}) is not applied, but the later step ${all[lastApplied]!.id} is: steps must be added after the applied ones, never before.`,
      );
    }
  }

  const pendingOf = <P extends Phase>(phase: P) => stepsUpTo(catalog, phase, release).filter((s) => !appliedIds.has(s.id));
  return {
    target: release,
    state,
    versionText: formatVersion(state.version),
    pending: { expand: pendingOf('expand'), migrate: pendingOf('migrate'), contract: pendingOf('contract') },
  };
}

/** The target release: the one named, or the newest the catalog ships. */
export function resolveTarget(catalog: Catalog, target: string | undefined): string {
  if (target === undefined) return catalog.releases[catalog.releases.length - 1]!;
  if (!catalog.releases.includes(target)) {
    throw new InputError(
      `Unknown release "${target}": the migrations ship ${catalog.releases.map((r) => `"${r}"`).join(', ')}.`,
    );
  }
  return target;
}

/** Unapplied migrate steps with committed batches whose file is not the one those batches ran with. */
export function partlyRunChanged(catalog: Catalog, state: DatabaseState): ConstructorParameters<typeof MigrateStepChangedError>[0] {
  const applied = new Set(state.applied.map((a) => a.stepId));
  return catalog.steps.flatMap((step) => {
    const progress = state.progress.get(step.id);
    if (step.phase !== 'migrate' || applied.has(step.id) || !progress || progress.batches === 0 || progress.checksum === step.checksum) {
      return [];
    }
    return [
      {
        stepId: step.id,
        file: step.file,
        progressChecksum: progress.checksum,
        fileChecksum: step.checksum,
        rowsDone: progress.rowsDone,
        batches: progress.batches,
      },
    ];
  });
}

/**
 * Refuses to resume a migrate step whose file changed after some of its batches committed (its cursor belongs to
 * the old statement), unless the operator chose to restart it (`restartSteps`). Plan and migrate call it, before
 * anything is written.
 */
export function refuseChangedMigrateSteps(catalog: Catalog, inspection: Inspection, restartSteps: readonly string[]): void {
  const changed = partlyRunChanged(catalog, inspection.state).filter((c) => !restartSteps.includes(c.stepId));
  if (changed.length > 0) throw new MigrateStepChangedError(changed);
}

/**
 * Checks the execution input's `restartSteps` before anything is written: each must name a migrate step up to the
 * target whose file changed after some of its batches committed (the one case that needs the decision).
 */
export function checkRestartSteps(catalog: Catalog, inspection: Inspection, restartSteps: readonly string[]): void {
  const changed = new Set(partlyRunChanged(catalog, inspection.state).map((c) => c.stepId));
  const pending = new Set(inspection.pending.migrate.map((s) => s.id));
  const problems = restartSteps.flatMap((id) => {
    const progress = inspection.state.progress.get(id);
    if (!pending.has(id)) return [`${id} is not a migrate step still to run up to release ${inspection.target}`];
    if (!progress || progress.batches === 0) return [`${id} has no committed batch: nothing to restart`];
    if (!changed.has(id)) return [`${id}'s file has not changed since its batches ran: nothing to restart (remove it from restartSteps)`];
    return [];
  });
  if (problems.length > 0) throw new InputError(`Invalid execution input: "restartSteps": ${problems.join('; ')}.`);
}
