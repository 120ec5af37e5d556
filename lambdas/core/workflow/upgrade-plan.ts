import type { Catalog } from '../catalog/step.ts';
import { plan } from '../phases/plan.ts';
import { InputError } from '../errors.ts';
import { resolveSettings, settingsProblems, type SettingsOverrides, type UpgradeSettings } from '../settings.ts';
import type { SqlClient } from '../sql/sql-client.ts';
import { engineBounds } from '../state/engine-transaction.ts';
import { acquireLease } from '../state/lease.ts';
import { ensureStateSchema } from '../state/schema.ts';
import { parseExecutionInput } from './execution-input.ts';

/**
 * What the first state decides and every later state reads (`$.plan` in the execution's data): small, and free of
 * row data, because it is written to the execution history.
 */
export interface UpgradePlan {
  /** The execution ARN (or local run id): owner of the lease and the run id in the history table. */
  readonly runId: string;
  readonly target: string;
  readonly stopAfter: 'expand' | 'migrate' | null;
  readonly settings: UpgradeSettings;
  readonly versionBefore: string;
  readonly pending: { readonly expand: string[]; readonly migrate: string[]; readonly contract: string[] };
  /** Phase-lint overrides in the steps to run, with their reasons, so they show in the execution history. */
  readonly lintOverrides: readonly { stepId: string; reason: string }[];
  readonly newTaskDefinitions: Readonly<Record<string, string>>;
  readonly startedAt: string;
}

/**
 * The plan state: validates the execution input and the catalog against the database (read-only so far), then
 * takes the lease. Bad input, drift or a newer database fail here, before anything is written.
 */
export async function startUpgrade(
  client: SqlClient,
  catalog: Catalog,
  options: { runId: string; input: unknown; defaults?: SettingsOverrides },
): Promise<UpgradePlan> {
  const input = parseExecutionInput(options.input);
  const settings = resolveSettings(options.defaults, input.settings);
  const problems = settingsProblems(settings);
  if (problems.length > 0) throw new InputError(`Invalid execution input: "settings": ${problems.join('; ')}.`);
  const bounds = engineBounds(settings);
  const planned = await plan(client, catalog, input.targetRelease, bounds);
  await ensureStateSchema(client, bounds);
  await acquireLease(client, options.runId, settings.leaseTtlSeconds, bounds);
  return {
    runId: options.runId,
    target: planned.target,
    stopAfter: input.stopAfter ?? null,
    settings,
    versionBefore: planned.version,
    pending: {
      expand: planned.pending.expand.map((s) => s.stepId),
      migrate: planned.pending.migrate.map((s) => s.stepId),
      contract: planned.pending.contract.map((s) => s.stepId),
    },
    lintOverrides: planned.lintOverrides.map((o) => ({ stepId: o.stepId, reason: o.reason })),
    newTaskDefinitions: input.newTaskDefinitions ?? {},
    startedAt: new Date().toISOString(),
  };
}
