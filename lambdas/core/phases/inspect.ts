import { stepsUpTo, type Catalog, type Phase, type Step } from '../catalog/step.ts';
import { CatalogOrderError, DatabaseAheadError, DriftError, InputError } from '../errors.ts';
import type { SqlSession } from '../sql/sql-client.ts';
import { formatVersion } from '../state/composite-version.ts';
import { readState, type DatabaseState } from '../state/database-state.ts';

/** Where a database stands against the catalog, for one target release. */
export interface Inspection {
  readonly target: string;
  readonly state: DatabaseState;
  readonly versionText: string;
  /** Steps still to run up to the target, per phase, in order. */
  readonly pending: Readonly<Record<Phase, readonly Step[]>>;
}

/**
 * Reads the database state and checks it against the catalog before anything runs: an unknown target release,
 * steps the code does not know (a newer database), applied files that changed (drift), and applied steps that are
 * not a prefix of the catalog (a step inserted before an applied one) are refused. Read-only.
 */
export async function inspect(session: SqlSession, catalog: Catalog, target?: string): Promise<Inspection> {
  const release = resolveTarget(catalog, target);
  const state = await readState(session);
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

  const pendingOf = (phase: Phase) => stepsUpTo(catalog, phase, release).filter((s) => !appliedIds.has(s.id));
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
