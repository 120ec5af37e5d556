import type { Catalog } from '../catalog/step.ts';
import type { DrainSourceConfig } from '../drain/drain-gate.ts';
import { serviceLabel } from '../drain/ecs-names.ts';
import { plan } from '../phases/plan.ts';
import { InputError } from '../errors.ts';
import { resolveSettings, settingsProblems, type SettingsOverrides } from '../settings.ts';
import type { SqlClient } from '../sql/sql-client.ts';
import { engineBounds } from '../state/engine-transaction.ts';
import { acquireLease } from '../state/lease.ts';
import { ensureStateSchema } from '../state/schema.ts';
import { parseExecutionInput, type ExecutionInput } from './execution-input.ts';
import type { UpgradePlan } from './task-contract.ts';

export type { UpgradePlan } from './task-contract.ts';

/** What starting the upgrade needs to know of the drain gate: its source. The start reads no ECS service itself. */
export interface StartDrainDependencies {
  readonly source: DrainSourceConfig;
}

type PlannedDrain = Pick<UpgradePlan, 'sessionPattern' | 'recordOldRelease'> & { oldTaskDefinitions?: UpgradePlan['oldTaskDefinitions'] };

/**
 * The first state ("Start upgrade"): validates the execution input, previews the upgrade (`plan`, read-only), then
 * takes the lease and answers the upgrade plan every later state reads. Bad input, drift or a newer database fail
 * here, before anything is written.
 */
export async function startUpgrade(
  client: SqlClient,
  catalog: Catalog,
  options: { runId: string; input: unknown; defaults?: SettingsOverrides; drain?: StartDrainDependencies },
): Promise<UpgradePlan> {
  const input = parseExecutionInput(options.input);
  const settings = resolveSettings(options.defaults, input.settings);
  const problems = settingsProblems(settings);
  if (problems.length > 0) throw new InputError(`Invalid execution input: "settings": ${problems.join('; ')}.`);
  const restartSteps = input.restartSteps ?? [];
  const bounds = engineBounds(settings);
  const planned = await plan(client, catalog, input.targetRelease, { restartSteps, bounds });
  const drain: PlannedDrain = options.drain ? planDrain(options.drain, input, planned) : { recordOldRelease: false };
  await ensureStateSchema(client, bounds);
  await acquireLease(client, options.runId, settings.leaseTtlSeconds, { takeOverFrom: input.continueFrom, bounds });
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
    ...drain,
    oldTaskDefinitions: drain.oldTaskDefinitions ?? {},
    restartSteps,
    startedAt: new Date().toISOString(),
    continuedFrom: input.continueFrom ?? null,
  };
}

/**
 * The drain gate's part of the plan, decided before anything is written. An ECS source records what the old
 * release runs while it is certainly the old one: before expand (the new release needs the expanded schema); the
 * plan only decides that it must be recorded (`recordOldRelease`), and "Record old release" reads it from ECS before
 * expand, in the drain task's function, so that this function carries no ECS client. An execution that starts after
 * expand (a continuation after `stopAfter`) cannot tell the old release from the new one, so it must name the new
 * release per service; otherwise a rollback would pass as drained.
 */
function planDrain(deps: StartDrainDependencies, input: ExecutionInput, planned: Awaited<ReturnType<typeof plan>>): PlannedDrain {
  const sessions = input.drain?.sessions;
  if (deps.source.kind === 'database-sessions') {
    return sessions === undefined ? { recordOldRelease: false } : { sessionPattern: sessions, recordOldRelease: false };
  }
  if (sessions !== undefined) {
    throw new InputError(
      `Invalid execution input: "drain.sessions": this state machine's drain source is ECS services, not database sessions; name the new release with newTaskDefinitions instead.`,
    );
  }
  const drainRuns = input.stopAfter === undefined && planned.pending.contract.length > 0;
  if (!drainRuns) return { recordOldRelease: false };
  // A continuation of a long migration: the execution it continues recorded the old release before expand.
  const carried = input.continueFrom === undefined ? undefined : input.oldTaskDefinitions;
  if (carried !== undefined && Object.keys(carried).length > 0) return { oldTaskDefinitions: carried, recordOldRelease: false };
  if (planned.pending.expand.length > 0) return { recordOldRelease: true };
  const requested = input.newTaskDefinitions ?? {};
  const unnamed = deps.source.services
    .filter((s) => (requested[s.service] ?? requested[serviceLabel(s.cluster, s.service)]) === undefined)
    .map((s) => s.service);
  if (unnamed.length > 0) {
    throw new InputError(
      `Invalid execution input: "newTaskDefinitions": expand already ran in an earlier execution, so the release the ECS services run now may be the new one or the old one (after a rollback); ` +
        `name the new release's task definition for ${unnamed.map((n) => `"${n}"`).join(', ')} (e.g. {"newTaskDefinitions": {"${unnamed[0]}": "${unnamed[0]}:42"}}, or emc start --new-task-definition).`,
    );
  }
  return { recordOldRelease: false };
}
