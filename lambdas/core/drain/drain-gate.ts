import type { ECSClient } from '@aws-sdk/client-ecs';
import type { SqlClient } from '../sql/sql-client.ts';
import { DrainTimeoutError } from './drain-errors.ts';
import { pinnedTaskDefinitions, type DrainReport } from './drain-report.ts';
import { drainSummary } from './drain-summary.ts';
import { checkEcsDrain } from './ecs-drain.ts';
import { serviceLabel, type EcsServiceRef } from './ecs-names.ts';
import { checkSessionDrain } from './session-drain.ts';

/**
 * Where the drain gate looks for old-release instances, as the drain task reads it from its environment: what the
 * construct's `DrainSource` prop (lib/drain-source.ts) binds to. Always explicit: the gate is never silently skipped.
 */
export type DrainSourceConfig =
  | { readonly kind: 'ecs'; readonly services: readonly { readonly cluster: string; readonly service: string }[] }
  | { readonly kind: 'database-sessions'; readonly applicationNamePattern: string; readonly applicationRole?: string };

/** The gate's state between polls, kept in the execution's data (`$.drain`). */
export interface DrainGateState {
  readonly drained: boolean;
  readonly startedAt: string;
  readonly polls: number;
  /** The report rendered for people (logs, `emc status`). */
  readonly summary: string;
  /** ECS: the new task definition per service, pinned at the first poll so a later rollback cannot pass as drained. */
  readonly newTaskDefinitions: Readonly<Record<string, string>>;
  readonly report: DrainReport;
}

export interface DrainGateOptions {
  readonly source: DrainSourceConfig;
  readonly timeoutSeconds: number;
  /** From the execution input: per ECS service name, the new release's task definition. */
  readonly requestedTaskDefinitions: Readonly<Record<string, string>>;
  /** From the execution input: the old release's session pattern, instead of the drain source's. */
  readonly sessionPattern?: string;
  /** Recorded at plan time, per ECS service (`cluster/service`): the task definitions the old release ran. */
  readonly oldTaskDefinitions?: Readonly<Record<string, readonly string[]>>;
  /** The previous poll's state; undefined at the first poll. */
  readonly previous: Pick<DrainGateState, 'startedAt' | 'polls' | 'newTaskDefinitions'> | undefined;
  readonly now?: Date;
}

/**
 * One poll of the drain gate. Returns the state to wait on, or throws: `DrainFailedError` when the old release can
 * never drain (missing service, failed or rolled-back deployment), `DrainTimeoutError` when it has not drained
 * within the timeout (naming what still blocks).
 */
export async function pollDrainGate(
  deps: { readonly sql: SqlClient; readonly ecs?: ECSClient },
  options: DrainGateOptions,
): Promise<DrainGateState> {
  const now = options.now ?? new Date();
  const startedAt = options.previous?.startedAt ?? now.toISOString();
  let report: DrainReport;
  let pinned: Record<string, string> = {};
  if (options.source.kind === 'ecs') {
    if (!deps.ecs) throw new Error('Internal error: the ECS drain source needs an ECS client');
    const refs: EcsServiceRef[] = options.source.services.map((s) => ({
      cluster: s.cluster,
      service: s.service,
      newTaskDefinition:
        options.previous?.newTaskDefinitions[serviceLabel(s.cluster, s.service)] ??
        options.requestedTaskDefinitions[s.service] ??
        options.requestedTaskDefinitions[serviceLabel(s.cluster, s.service)],
      oldTaskDefinitions: options.oldTaskDefinitions?.[serviceLabel(s.cluster, s.service)],
    }));
    const ecsReport = await checkEcsDrain(deps.ecs, refs, now);
    pinned = pinnedTaskDefinitions(ecsReport);
    report = ecsReport;
  } else {
    report = await checkSessionDrain(deps.sql, {
      applicationNamePattern: options.sessionPattern ?? options.source.applicationNamePattern,
      applicationRole: options.source.applicationRole,
    });
  }
  const elapsedSeconds = (now.getTime() - new Date(startedAt).getTime()) / 1000;
  if (!report.drained && elapsedSeconds >= options.timeoutSeconds) {
    throw new DrainTimeoutError(report, options.timeoutSeconds);
  }
  return {
    drained: report.drained,
    startedAt,
    polls: (options.previous?.polls ?? 0) + 1,
    summary: drainSummary(report),
    newTaskDefinitions: pinned,
    report,
  };
}
