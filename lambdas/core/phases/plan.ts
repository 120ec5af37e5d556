import type { Catalog, Phase } from '../catalog/step.ts';
import { describeGateReason } from '../errors.ts';
import type { SqlClient } from '../sql/sql-client.ts';
import { DEFAULT_BOUNDS, readTransaction, type EngineBounds } from '../state/engine-transaction.ts';
import { currentLease } from '../state/lease.ts';
import { stateSchemaExists } from '../state/schema.ts';
import { kindOf } from '../steps/run-steps.ts';
import type { Migration, Step } from '../steps/step-kind.ts';
import { contractGates } from './gates.ts';
import { checkRestartSteps, inspect, refuseChangedMigrateSteps } from './inspect.ts';

export interface PlannedStep {
  readonly stepId: string;
  readonly file: string;
  readonly transactional: boolean;
}

export interface PlannedMigration extends PlannedStep {
  readonly strategy: Migration['kind'];
  readonly rowsDone: number;
  readonly cursor: string | null;
}

export interface Plan {
  readonly target: string;
  /** The composite version now, e.g. `bexar_expand03, bexar_contract01`. */
  readonly version: string;
  readonly pending: {
    readonly expand: readonly PlannedStep[];
    readonly migrate: readonly PlannedMigration[];
    readonly contract: readonly PlannedStep[];
  };
  /** The first phase with work left, or null when the database is at the target. */
  readonly nextPhase: Phase | null;
  /**
   * Why contract could not run now besides its pending steps and the drain (which only the drain gate can tell), as
   * `describeGateReason` sentences.
   */
  readonly contractBlockedBy: readonly string[];
  /** Checks overridden (`emc:allow-destructive`, `emc:no-pending`) in steps still to run, with their reasons. */
  readonly lintOverrides: readonly { stepId: string; reason: string; findings: readonly string[] }[];
  readonly lease: { readonly owner: string; readonly expiresAt: string } | null;
}

/**
 * What an upgrade to `target` would do, without doing it: read-only, and it does not even create the tool's own
 * schema. Throws the same errors the phases would (unknown release, drift, a newer database, a partly-run migrate
 * step whose file changed unless `restartSteps` names it). Everything runs in
 * one READ ONLY transaction under the engine's statement timeout, pending queries included: the preview cannot
 * write, whatever the migration files say.
 */
export async function plan(
  client: SqlClient,
  catalog: Catalog,
  target?: string,
  options: { restartSteps?: readonly string[]; bounds?: EngineBounds } = {},
): Promise<Plan> {
  const restartSteps = options.restartSteps ?? [];
  return readTransaction(client, options.bounds ?? DEFAULT_BOUNDS, 'reading the database for the plan', async (tx) => {
    const inspection = await inspect(tx, catalog, target);
    checkRestartSteps(catalog, inspection, restartSteps);
    refuseChangedMigrateSteps(catalog, inspection, restartSteps);
    const { expand, migrate, contract } = inspection.pending;
    const lease = (await stateSchemaExists(tx)) ? await currentLease(tx) : undefined;
    // Pending expand and migrate steps are listed above; only what running them would not clear blocks contract.
    const blockedBy = (await contractGates(tx, catalog, inspection, true))
      .filter((r) => r.kind !== 'expand-pending' && r.kind !== 'migrate-unfinished')
      .map(describeGateReason);
    const summary = (s: Step): PlannedStep => ({ stepId: s.id, file: s.file, transactional: kindOf(s).transactional });
    return {
      target: inspection.target,
      version: inspection.versionText,
      pending: {
        expand: expand.map(summary),
        migrate: migrate.map((s) => {
          const progress = inspection.state.progress.get(s.id);
          return {
            ...summary(s),
            strategy: s.kind,
            rowsDone: progress?.rowsDone ?? 0,
            cursor: progress?.cursor ?? null,
          };
        }),
        contract: contract.map(summary),
      },
      nextPhase: expand.length ? 'expand' : migrate.length ? 'migrate' : contract.length || blockedBy.length ? 'contract' : null,
      contractBlockedBy: blockedBy,
      lintOverrides: [...expand, ...migrate, ...contract].flatMap((s) =>
        s.lintOverride ? [{ stepId: s.id, reason: s.lintOverride.reason, findings: s.lintOverride.findings }] : [],
      ),
      lease: lease ? { owner: lease.owner, expiresAt: lease.expiresAt.toISOString() } : null,
    };
  });
}
