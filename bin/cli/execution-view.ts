import type { DescribeExecutionOutput, HistoryEvent } from '@aws-sdk/client-sfn';
import { CONTROL_STATE_NAMES as C, STATE_NAMES, type WorkflowTask } from '../../lambdas/core/workflow/state-names.ts';
import { parseFailureCause } from './failure-cause.ts';

/**
 * The states in which the state machine waits for the old release to drain (lib/upgrade-state-machine.ts). Once
 * an execution is in one of them, expand and migrate are done and the pipeline may deploy the new release.
 */
export const DRAIN_WAIT_STATES: readonly string[] = [STATE_NAMES.drain, C.waitForDrain];

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED' | 'PENDING_REDRIVE';

/** Rows migrated so far over every migrate step of the run, from the migrate task's outputs. */
export interface MigrateProgress {
  readonly rowsDone: number;
  /** Rows still to migrate by the steps' pending queries or table estimates; null when a step cannot tell. */
  readonly rowsRemaining: number | null;
  /** `rowsDone + rowsRemaining`: the estimated total, null when unknown. */
  readonly rowsTotal: number | null;
  readonly calls: number;
  readonly finished: boolean;
}

/** What an operator wants to know about one execution, built from DescribeExecution and the history. */
export interface ExecutionView {
  readonly executionArn: string;
  readonly name: string;
  readonly status: ExecutionStatus;
  readonly startDate: string | undefined;
  readonly stopDate: string | undefined;
  /** The last state entered (the state running now, for a running execution). */
  readonly currentState: string | null;
  readonly phase: WorkflowTask | 'failed' | 'complete' | null;
  readonly target: string | null;
  readonly stopAfter: 'expand' | 'migrate' | null;
  readonly versionBefore: string | null;
  readonly versionAfter: string | null;
  /** The composite version as last seen: the summary's, a failure's, the last phase's, or the plan's before. */
  readonly version: string | null;
  readonly pending: { readonly expand: readonly string[]; readonly migrate: readonly string[]; readonly contract: readonly string[] } | null;
  readonly migrate: MigrateProgress | null;
  readonly drain: { readonly drained: boolean; readonly summary: string; readonly polls: number } | null;
  /** The execution has entered a drain-wait state: expand and migrate are done. */
  readonly reachedDrainWait: boolean;
  readonly rowsMigrated: number | null;
  readonly error: string | null;
  readonly cause: string | null;
  /** The execution a long migration went on in ("Continue in a new execution"): this one is not the end of it. */
  readonly continuedIn: string | null;
}

const TASK_BY_STATE = new Map<string, WorkflowTask>(
  (Object.entries(STATE_NAMES) as [WorkflowTask, string][]).map(([task, name]) => [name, task]),
);
/** Choice, Pass and Wait states, by the phase they belong to. */
const OTHER_STATES: Readonly<Record<string, WorkflowTask | 'failed' | 'complete'>> = {
  [C.stopAfterExpand]: 'expand',
  [C.migrationFinished]: 'migrate',
  [C.stopAfterMigrate]: 'migrate',
  [C.startDrainWait]: 'drain',
  [C.waitForDrain]: 'drain',
  [C.drained]: 'drain',
  [C.recordFailure]: 'failed',
  [C.failed]: 'failed',
  [C.complete]: 'complete',
};

export function phaseOfState(state: string | null): ExecutionView['phase'] {
  if (state === null) return null;
  return TASK_BY_STATE.get(state) ?? OTHER_STATES[state] ?? null;
}

export function isTerminal(status: ExecutionStatus): boolean {
  return status !== 'RUNNING' && status !== 'PENDING_REDRIVE';
}

export function viewExecution(description: DescribeExecutionOutput, events: readonly HistoryEvent[]): ExecutionView {
  let currentState: string | null = null;
  let reachedDrainWait = false;
  let plan: Record<string, unknown> | undefined;
  let phaseVersion: string | null = null;
  let drain: ExecutionView['drain'] = null;
  let summary: Record<string, unknown> | undefined;
  let failureVersion: string | null = null;
  let error: string | null = description.error ?? null;
  let cause: string | null = description.cause ?? null;
  const stepProgress = new Map<string, { rowsDone: number; remaining: number | null; finished: boolean }>();
  let migrateCalls = 0;
  let migrateFinished = false;

  for (const event of events) {
    const entered = event.stateEnteredEventDetails?.name;
    if (entered !== undefined && event.type?.endsWith('StateEntered')) {
      currentState = entered;
      if (DRAIN_WAIT_STATES.includes(entered)) reachedDrainWait = true;
    }
    const exited = event.stateExitedEventDetails;
    if (exited && event.type?.endsWith('StateExited')) {
      const output = parseJsonObject(exited.output);
      const task = TASK_BY_STATE.get(exited.name ?? '');
      if (output && task === 'plan' && isObject(output['plan'])) plan = output['plan'];
      if (output && (task === 'expand' || task === 'contract') && isObject(output[task])) {
        phaseVersion = stringOr(output[task]['versionAfter'], phaseVersion);
      }
      if (output && task === 'migrate' && isObject(output['migrate'])) {
        migrateCalls++;
        const result = output['migrate'];
        migrateFinished = result['finished'] === true;
        for (const step of Array.isArray(result['steps']) ? result['steps'] : []) {
          if (!isObject(step) || typeof step['stepId'] !== 'string') continue;
          stepProgress.set(step['stepId'], {
            rowsDone: numberOr(step['rowsDone'], 0),
            remaining: typeof step['remaining'] === 'number' ? step['remaining'] : null,
            finished: step['finished'] === true,
          });
        }
      }
      if (output && task === 'drain' && isObject(output['drain'])) {
        const d = output['drain'];
        drain = { drained: d['drained'] === true, summary: stringOr(d['summary'], ''), polls: numberOr(d['polls'], 0) };
      }
      if (output && task === 'finish' && isObject(output['summary'])) summary = output['summary'];
      if (output && exited.name === C.recordFailure && isObject(output['failure'])) {
        failureVersion = stringOr(output['failure']['version'], failureVersion);
      }
    }
    const failed = event.executionFailedEventDetails ?? event.executionTimedOutEventDetails ?? event.executionAbortedEventDetails;
    if (failed) {
      error = failed.error ?? error;
      cause = failed.cause ?? cause;
    }
    if (event.executionSucceededEventDetails && summary === undefined) {
      summary = parseJsonObject(event.executionSucceededEventDetails.output);
    }
  }
  if (summary === undefined && description.status === 'SUCCEEDED') summary = parseJsonObject(description.output);
  if (cause !== null && failureVersion === null) failureVersion = parseFailureCause(cause).version;

  const steps = [...stepProgress.values()];
  const rowsDone = steps.reduce((n, s) => n + s.rowsDone, 0);
  const rowsRemaining = steps.some((s) => !s.finished && s.remaining === null)
    ? null
    : steps.reduce((n, s) => n + (s.finished ? 0 : (s.remaining ?? 0)), 0);
  const versionBefore = plan ? stringOr(plan['versionBefore'], null) : null;
  const versionAfter = summary ? stringOr(summary['versionAfter'], null) : null;
  const pending = plan && isObject(plan['pending']) ? plan['pending'] : undefined;
  return {
    executionArn: description.executionArn ?? '',
    name: description.name ?? '',
    status: (description.status ?? 'RUNNING') as ExecutionStatus,
    startDate: description.startDate?.toISOString(),
    stopDate: description.stopDate?.toISOString(),
    currentState,
    phase: phaseOfState(currentState),
    target: plan ? stringOr(plan['target'], null) : null,
    stopAfter: plan && (plan['stopAfter'] === 'expand' || plan['stopAfter'] === 'migrate') ? plan['stopAfter'] : null,
    versionBefore,
    versionAfter,
    version: versionAfter ?? failureVersion ?? phaseVersion ?? versionBefore,
    pending: pending
      ? { expand: stringList(pending['expand']), migrate: stringList(pending['migrate']), contract: stringList(pending['contract']) }
      : null,
    migrate:
      migrateCalls === 0
        ? null
        : {
            rowsDone,
            rowsRemaining,
            rowsTotal: rowsRemaining === null ? null : rowsDone + rowsRemaining,
            calls: migrateCalls,
            finished: migrateFinished,
          },
    drain,
    reachedDrainWait,
    rowsMigrated: summary ? numberOr(summary['rowsMigrated'], 0) : null,
    error,
    cause,
    continuedIn: summary ? stringOr(summary['continuedIn'], null) : null,
  };
}

export function parseJsonObject(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const value: unknown = JSON.parse(text);
    return isObject(value) ? value : undefined;
  } catch {
    return undefined;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function stringOr<T>(value: unknown, fallback: T): string | T {
  return typeof value === 'string' ? value : fallback;
}

function numberOr(value: unknown, fallback: number): number {
  return typeof value === 'number' ? value : fallback;
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}
