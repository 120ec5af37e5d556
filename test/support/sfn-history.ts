import {
  DescribeExecutionCommand,
  ExecutionDoesNotExist,
  GetExecutionHistoryCommand,
  StartExecutionCommand,
  type DescribeExecutionOutput,
  type GetExecutionHistoryCommandInput,
  type HistoryEvent,
  type SFNClientResolvedConfig,
  type ServiceInputTypes,
  type ServiceOutputTypes,
} from '@aws-sdk/client-sfn';
import type { AwsStub } from 'aws-sdk-client-mock';
import { failureRecord, TaskFailedError } from '../../lambdas/handlers/commons/task.ts';
import { resolveSettings } from '../../lambdas/core/settings.ts';
import { TASK_STATE_NAMES } from '../../lambdas/core/workflow/state-names.ts';
import {
  RESULT_KEYS,
  type DrainTaskResult,
  type FailureReport,
  type MigrateTaskResult,
  type PhaseTask,
  type RunSummary,
  type SchemaPhaseTaskResult,
  type TaskName,
  type TaskResult,
  type UpgradePlan,
} from '../../lambdas/core/workflow/task-contract.ts';

/** What `mockClient(SFNClient)` returns. */
export type SfnMock = AwsStub<ServiceInputTypes, ServiceOutputTypes, SFNClientResolvedConfig>;

/**
 * Execution histories shaped as GetExecutionHistory returns them (Step Functions API reference: HistoryEvent and
 * its *EventDetails). The workflow's tasks invoke Lambda function ARNs directly (`payloadResponseOnly`), so a
 * task attempt is LambdaFunctionScheduled / LambdaFunctionStarted / LambdaFunctionSucceeded or
 * LambdaFunctionFailed between TaskStateEntered and TaskStateExited.
 */
export const STATE_MACHINE_ARN = 'arn:aws:states:eu-west-1:123456789012:stateMachine:UpgradeStateMachineC233778C-Ab12Cd34Ef56';
export const executionArn = (name: string) =>
  `arn:aws:states:eu-west-1:123456789012:execution:UpgradeStateMachineC233778C-Ab12Cd34Ef56:${name}`;
const FUNCTION = 'arn:aws:lambda:eu-west-1:123456789012:function:EmcUpgrade-UpgradeMigrate';

export class HistoryBuilder {
  readonly events: HistoryEvent[] = [];
  private clock: number;
  /** The execution's data as it flows from state to state (each task's result lands at its ResultPath). */
  private data: Record<string, unknown> = {};

  constructor(start = Date.parse('2025-06-01T10:00:00Z')) {
    this.clock = start;
  }

  private add(type: HistoryEvent['type'], details: Partial<HistoryEvent> = {}, stepMs = 1000): this {
    this.clock += stepMs;
    const id = this.events.length + 1;
    this.events.push({ id, previousEventId: id - 1, timestamp: new Date(this.clock), type, ...details });
    return this;
  }

  started(input: Record<string, unknown>): this {
    this.data = { ...input };
    return this.add('ExecutionStarted', {
      executionStartedEventDetails: { input: JSON.stringify(input), inputDetails: { truncated: false }, roleArn: 'arn:aws:iam::123456789012:role/Sfn' },
    });
  }

  /** A contract task's state whose Lambda returns `result`, stored at its result path. */
  task<T extends TaskName>(task: T, result: TaskResult<T>, durationMs = 2000): this {
    const name = stateOf(task);
    const resultKey = RESULT_KEYS[task];
    this.entered('TaskStateEntered', name);
    this.add('LambdaFunctionScheduled', { lambdaFunctionScheduledEventDetails: { resource: FUNCTION, input: '{}' } }, 10);
    this.add('LambdaFunctionStarted', {}, 10);
    this.add('LambdaFunctionSucceeded', { lambdaFunctionSucceededEventDetails: { output: JSON.stringify(result) } }, durationMs);
    this.data = { ...this.data, [resultKey]: result };
    return this.exited('TaskStateExited', name);
  }

  /**
   * A task's state whose Lambda fails `attempts` times (the Retry tries again after all but the last) and whose
   * Catch stores the error at `$.failedIn.<task>`. `thrown` is what the task's work threw: the handler wrapper turns
   * it into the Lambda error document carrying the failure record. `outsideHandler` gives the Error and Cause of a
   * failure the handler never saw (a Lambda timeout, throttling): no record.
   */
  failingTask(task: PhaseTask, thrown: Error | { outsideHandler: { error: string; cause: string } }, attempts = 1): this {
    const name = stateOf(task);
    this.entered('TaskStateEntered', name);
    const { error, cause } = 'outsideHandler' in thrown ? thrown.outsideHandler : lambdaErrorDocument(task, thrown);
    for (let attempt = 1; attempt <= attempts; attempt++) {
      this.add('LambdaFunctionScheduled', { lambdaFunctionScheduledEventDetails: { resource: FUNCTION, input: '{}' } }, attempt === 1 ? 10 : 5000);
      this.add('LambdaFunctionStarted', {}, 10);
      this.add('LambdaFunctionFailed', { lambdaFunctionFailedEventDetails: { error, cause } }, 500);
    }
    this.data = { ...this.data, failedIn: { [task]: { Error: error, Cause: cause } } };
    return this.exited('TaskStateExited', name);
  }

  /** A task's state whose first attempt throws `thrown` and whose Retry succeeds. */
  retriedTask<T extends PhaseTask>(task: T, result: TaskResult<T>, thrown: Error): this {
    const name = stateOf(task);
    const resultKey = RESULT_KEYS[task];
    this.entered('TaskStateEntered', name);
    const { error, cause } = lambdaErrorDocument(task, thrown);
    this.add('LambdaFunctionScheduled', { lambdaFunctionScheduledEventDetails: { resource: FUNCTION, input: '{}' } }, 10);
    this.add('LambdaFunctionStarted', {}, 10);
    this.add('LambdaFunctionFailed', { lambdaFunctionFailedEventDetails: { error, cause } }, 2000);
    this.add('LambdaFunctionScheduled', { lambdaFunctionScheduledEventDetails: { resource: FUNCTION, input: '{}' } }, 10_000);
    this.add('LambdaFunctionStarted', {}, 10);
    this.add('LambdaFunctionSucceeded', { lambdaFunctionSucceededEventDetails: { output: JSON.stringify(result) } }, 1000);
    this.data = { ...this.data, [resultKey]: result };
    return this.exited('TaskStateExited', name);
  }

  choice(name: string): this {
    return this.entered('ChoiceStateEntered', name).exited('ChoiceStateExited', name);
  }

  pass(name: string, resultKey: string, result: unknown): this {
    this.entered('PassStateEntered', name);
    this.data = { ...this.data, [resultKey]: result };
    return this.exited('PassStateExited', name);
  }

  /** Enters a Wait state; `exit` leaves it (omit to stop while waiting). */
  wait(name: string, exit = true): this {
    this.entered('WaitStateEntered', name);
    return exit ? this.exited('WaitStateExited', name) : this;
  }

  /** Enters a Task state without finishing it (an execution polled mid-task). */
  enter(name: string): this {
    this.entered('TaskStateEntered', name);
    return this.add('LambdaFunctionScheduled', { lambdaFunctionScheduledEventDetails: { resource: FUNCTION, input: '{}' } }, 10);
  }

  failed(error: string, cause: string): this {
    this.entered('FailStateEntered', 'Upgrade failed');
    return this.add('ExecutionFailed', { executionFailedEventDetails: { error, cause } });
  }

  succeeded(output: unknown): this {
    this.entered('SucceedStateEntered', 'Upgrade complete').exited('SucceedStateExited', 'Upgrade complete');
    return this.add('ExecutionSucceeded', { executionSucceededEventDetails: { output: JSON.stringify(output), outputDetails: { truncated: false } } });
  }

  private entered(type: HistoryEvent['type'], name: string): this {
    return this.add(type, { stateEnteredEventDetails: { name, input: JSON.stringify(this.data), inputDetails: { truncated: false } } });
  }

  private exited(type: HistoryEvent['type'], name: string): this {
    return this.add(type, { stateExitedEventDetails: { name, output: JSON.stringify(this.data), outputDetails: { truncated: false } } }, 10);
  }

  get now(): Date {
    return new Date(this.clock);
  }
}

function stateOf(task: TaskName): string {
  return TASK_STATE_NAMES[task];
}

/**
 * The Error and Cause Step Functions records for a handler that threw `thrown`: Lambda's error document
 * `{"errorType", "errorMessage", "trace"}` ("Lambda function errors in Node.js", AWS Lambda developer guide) of the
 * TaskFailedError the handler wrapper throws.
 */
export function lambdaErrorDocument(task: PhaseTask, thrown: Error): { error: string; cause: string } {
  const failed = new TaskFailedError(failureRecord(task, thrown), { cause: thrown });
  return { error: failed.name, cause: JSON.stringify({ errorType: failed.name, errorMessage: failed.message, trace: [] }) };
}

/** The start task's result, the upgrade's plan (`$.plan`), as lambdas/core/workflow/upgrade-plan.ts returns it. */
export function planResult(runId: string, overrides: Partial<UpgradePlan> = {}): UpgradePlan {
  return {
    runId,
    target: 'bexar',
    stopAfter: null,
    settings: resolveSettings({ batchPauseMs: 20 }),
    versionBefore: '(none)',
    pending: {
      expand: ['bexar_expand01', 'bexar_expand02', 'bexar_expand03'],
      migrate: ['bexar_migrate01', 'bexar_migrate02', 'bexar_migrate03'],
      contract: ['bexar_contract01', 'bexar_contract02', 'bexar_contract03'],
    },
    lintOverrides: [],
    newTaskDefinitions: {},
    oldTaskDefinitions: {},
    recordOldRelease: false,
    restartSteps: [],
    startedAt: '2025-06-01T10:00:01.000Z',
    continuedFrom: null,
    ...overrides,
  };
}

/** Expand's or contract's result. */
export function schemaPhaseResult(phase: 'expand' | 'contract', stepsRun: string[], versionAfter: string, versionBefore = '(none)'): SchemaPhaseTaskResult {
  return { phase, stepsRun, durationMs: 40, versionBefore, versionAfter };
}

/** One migrate call's result (`$.migrate`), as the migrate handler returns it. */
export function migrateResult(done: number, remaining: number | null, finished = false, calls = 1): MigrateTaskResult {
  return {
    finished,
    calls,
    rowsThisCall: 1000,
    batchesThisCall: 1,
    durationMs: 60000,
    stepsFinished: finished ? ['bexar_migrate01'] : [],
    steps: [{ stepId: 'bexar_migrate01', rowsDone: done, remaining, batches: done / 1000, finished }],
    rowsDone: done,
    rowsRemaining: remaining,
  };
}

/** One drain poll's result (`$.drain`), from a database-sessions source. */
export function drainResult(drained: boolean, summary: string, polls = 1): DrainTaskResult {
  return {
    drained,
    startedAt: '2025-06-01T10:05:00.000Z',
    polls,
    summary,
    newTaskDefinitions: {},
    report: { drained, source: 'database-sessions', checkedAt: '2025-06-01T10:05:00.000Z', applicationNamePattern: 'app/v1%', blockers: [], startTimesHidden: false },
  };
}

/** "Release lease and summarise"'s result (`$.summary`). */
export function runSummary(runId: string, overrides: Partial<RunSummary> = {}): RunSummary {
  return {
    runId,
    target: 'bexar',
    outcome: 'completed',
    versionBefore: '(none)',
    versionAfter: 'bexar_expand03, bexar_contract03',
    steps: [],
    rowsMigrated: 4000,
    durationMs: 60000,
    ...overrides,
  };
}

/** "Record failure"'s result for a task that threw `thrown`, as reportFailure builds it. */
export function failureReport(task: PhaseTask, thrown: Error, options: { version: string; leaseReleased?: boolean; cause?: string }): FailureReport {
  const record = failureRecord(task, thrown);
  const state = stateOf(task);
  return {
    error: record.errorClass,
    cause: options.cause ?? `"${state}" failed with ${record.errorClass}: ${record.message}\nNext: ${record.nextAction}\nDatabase version now: ${options.version}`,
    failedState: state,
    version: options.version,
    leaseReleased: options.leaseReleased ?? true,
    record,
  };
}

export interface ExecutionStage {
  readonly status: NonNullable<DescribeExecutionOutput['status']>;
  /** The history so far (every event, oldest first). */
  readonly events: readonly HistoryEvent[];
  readonly error?: string;
  readonly cause?: string;
  readonly output?: string;
}

/**
 * Serves one execution through DescribeExecution and GetExecutionHistory as it moves through `stages`: each
 * DescribeExecution moves to the next stage (staying at the last), and GetExecutionHistory pages the current
 * stage's events as the API does (`maxResults`, `nextToken`, `reverseOrder`).
 */
export function serveExecution(
  sfn: SfnMock,
  options: {
    readonly executionArn: string;
    readonly name: string;
    readonly input: unknown;
    readonly stages: readonly ExecutionStage[];
    /** The execution does not exist (DescribeExecution: ExecutionDoesNotExist) until StartExecution is called. */
    readonly notStartedYet?: boolean;
  },
): { readonly describeCalls: () => number } {
  let current = -1;
  let started = options.notStartedYet !== true;
  if (!started) {
    sfn.on(StartExecutionCommand).callsFake(() => {
      started = true;
      return { executionArn: options.executionArn, startDate: options.stages[0]?.events[0]?.timestamp ?? new Date() };
    });
  }
  const stage = () => options.stages[Math.max(0, Math.min(current, options.stages.length - 1))]!;
  sfn
    .on(DescribeExecutionCommand, { executionArn: options.executionArn })
    .callsFake(() => {
      if (!started) {
        throw new ExecutionDoesNotExist({ message: `Execution Does Not Exist: '${options.executionArn}'`, $metadata: {} });
      }
      current++;
      const s = stage();
      const start = s.events[0]?.timestamp;
      const last = s.events[s.events.length - 1]?.timestamp;
      return {
        executionArn: options.executionArn,
        stateMachineArn: STATE_MACHINE_ARN,
        name: options.name,
        status: s.status,
        startDate: start,
        ...(s.status === 'RUNNING' ? {} : { stopDate: last }),
        input: JSON.stringify(options.input),
        ...(s.error ? { error: s.error } : {}),
        ...(s.cause ? { cause: s.cause } : {}),
        ...(s.output ? { output: s.output } : {}),
      } satisfies DescribeExecutionOutput;
    });
  sfn
    .on(GetExecutionHistoryCommand, { executionArn: options.executionArn })
    .callsFake((input: GetExecutionHistoryCommandInput) => pageOf(stage().events, input));
  return { describeCalls: () => current + 1 };
}

/** One page of `events` for a GetExecutionHistory request; the token is the offset of the next page. */
export function pageOf(events: readonly HistoryEvent[], input: GetExecutionHistoryCommandInput): { events: HistoryEvent[]; nextToken?: string } {
  const ordered = input.reverseOrder ? [...events].reverse() : [...events];
  const offset = input.nextToken ? Number(input.nextToken) : 0;
  const size = input.maxResults && input.maxResults > 0 ? input.maxResults : 100;
  const page = ordered.slice(offset, offset + size);
  return offset + size < ordered.length ? { events: page, nextToken: String(offset + size) } : { events: page };
}
