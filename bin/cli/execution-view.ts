import type { DescribeExecutionOutput, HistoryEvent } from '@aws-sdk/client-sfn';
import {
  CONTROL_STATE_NAMES as C,
  executionOutputSchema,
  parseTaskResult,
  parseWith,
  STATE_NAMES,
  type ExecutionOutput,
  type FailureReport,
  type TaskName,
  type TaskResult,
  type UpgradePlan,
  type WorkflowTask,
} from '../../lambdas/core/workflow/index.ts';
import { ExecutionContractError } from './cli-errors.ts';

/**
 * The states in which the state machine waits for the old release to drain (lib/upgrade-state-machine.ts). Once
 * an execution is in one of them, expand and migrate are done and the pipeline may deploy the new release.
 */
export const DRAIN_WAIT_STATES: readonly string[] = [STATE_NAMES.drain, C.waitForDrain];

export type ExecutionStatus = 'RUNNING' | 'SUCCEEDED' | 'FAILED' | 'TIMED_OUT' | 'ABORTED' | 'PENDING_REDRIVE';

/** Rows migrated so far over every migrate step of the run, from the migrate task's outputs. */
export interface MigrateTotals {
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
  readonly migrate: MigrateTotals | null;
  readonly drain: { readonly drained: boolean; readonly summary: string; readonly polls: number } | null;
  /** The execution has entered a drain-wait state: expand and migrate are done. */
  readonly reachedDrainWait: boolean;
  readonly rowsMigrated: number | null;
  readonly error: string | null;
  /** The Fail state's Cause: the sentence "Record failure" wrote for a person. */
  readonly cause: string | null;
  /** "Record failure"'s report with the failed task's structured record; null when the failure path did not run. */
  readonly failure: FailureReport | null;
  /** The execution a long migration went on in ("Continue in a new execution"): this one is not the end of it. */
  readonly continuedIn: string | null;
}

const TASK_BY_STATE = new Map<string, TaskName>([
  ...(Object.entries(STATE_NAMES) as [WorkflowTask, string][]).map(([task, name]): [string, TaskName] => [name, task]),
  [C.recordOldRelease, 'recordOldRelease'],
  [C.recordFailure, 'recordFailure'],
]);
/** Choice, Pass and Wait states, by the phase they belong to. */
const OTHER_STATES: Readonly<Record<string, WorkflowTask | 'failed' | 'complete'>> = {
  [C.oldReleaseToRecord]: 'start',
  [C.recordOldRelease]: 'start',
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
  const task = TASK_BY_STATE.get(state);
  return task !== undefined && task !== 'recordFailure' && task !== 'recordOldRelease' ? task : (OTHER_STATES[state] ?? null);
}

/** DescribeExecution statuses after which an execution runs no more tasks (PENDING_REDRIVE: it is about to run again). */
const ENDED_STATUSES: ReadonlySet<string> = new Set<ExecutionStatus>(['SUCCEEDED', 'FAILED', 'TIMED_OUT', 'ABORTED']);

/** True once the execution has ended; a status this CLI does not know (or none) counts as one that may still run. */
export function isTerminal(status: string | undefined): boolean {
  return status !== undefined && ENDED_STATUSES.has(status);
}

export function viewExecution(description: DescribeExecutionOutput, events: readonly HistoryEvent[]): ExecutionView {
  let currentState: string | null = null;
  let reachedDrainWait = false;
  let plan: UpgradePlan | undefined;
  let phaseVersion: string | null = null;
  let drain: ExecutionView['drain'] = null;
  let summary: ExecutionOutput | undefined;
  let failure: FailureReport | null = null;
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
    const result = taskResultOf(event, currentState);
    switch (result?.task) {
      case 'start':
        plan = result.value;
        break;
      case 'expand':
      case 'contract':
        phaseVersion = result.value.versionAfter;
        break;
      case 'migrate':
        migrateCalls++;
        migrateFinished = result.value.finished;
        for (const step of result.value.steps) stepProgress.set(step.stepId, step);
        break;
      case 'drain':
        drain = { drained: result.value.drained, summary: result.value.summary, polls: result.value.polls };
        break;
      case 'finish':
        summary = result.value;
        break;
      case 'recordFailure':
        failure = result.value;
        break;
    }
    const failed = event.executionFailedEventDetails ?? event.executionTimedOutEventDetails ?? event.executionAbortedEventDetails;
    if (failed) {
      error = failed.error ?? error;
      cause = failed.cause ?? cause;
    }
    if (event.executionSucceededEventDetails && summary === undefined) {
      summary = executionOutputOf(event.executionSucceededEventDetails.output);
    }
  }
  if (summary === undefined && description.status === 'SUCCEEDED') summary = executionOutputOf(description.output);

  const steps = [...stepProgress.values()];
  const rowsDone = steps.reduce((n, s) => n + s.rowsDone, 0);
  const rowsRemaining = steps.some((s) => !s.finished && s.remaining === null)
    ? null
    : steps.reduce((n, s) => n + (s.finished ? 0 : (s.remaining ?? 0)), 0);
  const run = summary && 'versionAfter' in summary ? summary : undefined;
  const versionBefore = plan?.versionBefore ?? null;
  const versionAfter = run?.versionAfter ?? null;
  return {
    executionArn: description.executionArn ?? '',
    name: description.name ?? '',
    status: (description.status ?? 'RUNNING') as ExecutionStatus,
    startDate: description.startDate?.toISOString(),
    stopDate: description.stopDate?.toISOString(),
    currentState,
    phase: phaseOfState(currentState),
    target: plan?.target ?? null,
    stopAfter: plan?.stopAfter ?? null,
    versionBefore,
    versionAfter,
    version: versionAfter ?? failure?.version ?? phaseVersion ?? versionBefore,
    pending: plan?.pending ?? null,
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
    rowsMigrated: run?.rowsMigrated ?? null,
    error,
    cause,
    failure,
    continuedIn: summary && 'continuedIn' in summary ? summary.continuedIn : null,
  };
}

/** A task result read from the history with the task contract, tagged with its task. */
export type TaskResultEvent = { [T in TaskName]: { readonly task: T; readonly value: TaskResult<T> } }[TaskName];

/**
 * The result of the contract task running in `state`, when `event` is its Lambda's success (the tasks invoke
 * function ARNs with `payloadResponseOnly`, so LambdaFunctionSucceeded's output is the handler's return value).
 * A result that does not match the contract is an ExecutionContractError, never a silently missing field.
 */
export function taskResultOf(event: HistoryEvent, state: string | null): TaskResultEvent | undefined {
  const output = event.lambdaFunctionSucceededEventDetails?.output ?? event.taskSucceededEventDetails?.output;
  const task = state === null ? undefined : TASK_BY_STATE.get(state);
  if (output === undefined || task === undefined || state === null) return undefined;
  const parsed = parseTaskResult(task, parseJson(output));
  if (!parsed.ok) throw new ExecutionContractError(state, parsed.problems);
  return { task, value: parsed.value } as TaskResultEvent;
}

function executionOutputOf(output: string | undefined): ExecutionOutput | undefined {
  if (output === undefined) return undefined;
  const parsed = parseWith(executionOutputSchema, parseJson(output));
  if (!parsed.ok) throw new ExecutionContractError(C.complete, parsed.problems);
  return parsed.value;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
