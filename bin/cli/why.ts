import { ListExecutionsCommand, type HistoryEvent, type SFNClient } from '@aws-sdk/client-sfn';
import type { Command } from 'commander';
import { loadCatalog, type Catalog } from '../../lambdas/core/index.ts';
import { CONTROL_STATE_NAMES as C, type TaskFailure } from '../../lambdas/core/workflow/index.ts';
import { describeExecution, readExecutionHistory, sfnCall } from './aws.ts';
import { viewExecution, type ExecutionStatus } from './execution-view.ts';
import { NotFoundError } from './cli-errors.ts';
import { EXIT } from './exit-codes.ts';
import { failureOf } from './history.ts';
import { addAwsOptions, addJsonOption, type AwsFlags, type CommandHost } from './host.ts';
import { keyValues, printJson, println } from './output.ts';

/** Why an execution failed, and what to do about it. */
export interface WhyReport {
  readonly executionArn: string;
  readonly name: string;
  readonly status: ExecutionStatus;
  /** False for an execution that is running or succeeded: the other fields are then mostly null. */
  readonly failed: boolean;
  readonly failedState: string | null;
  /** The typed error name: StepFailedError, LeaseHeldError, States.Timeout, ... */
  readonly error: string | null;
  readonly message: string | null;
  readonly stepId: string | null;
  readonly file: string | null;
  /** Line in `file` where the failed statement starts. */
  readonly line: number | null;
  readonly sqlState: string | null;
  /** The statement's SQL, when `--migrations` holds the step. */
  readonly statement: string | null;
  /** Times the failed state was retried before the failure was caught. */
  readonly retries: number;
  /** The database's composite version when the failure was recorded. */
  readonly version: string | null;
  readonly nextAction: string | null;
  /** What running the upgrade again will do. */
  readonly rerun: string | null;
  /** The Fail state's Cause, as recorded. */
  readonly cause: string | null;
}

/**
 * Reads a failed execution's history: "Record failure"'s report (the failed state, the failed task's structured
 * record: step, file, statement line, SQLSTATE, next action; the version then), never the Cause's sentence.
 */
export async function explainExecution(
  deps: { readonly sfn: SFNClient },
  options: { readonly executionArn: string; readonly catalog?: Catalog },
): Promise<WhyReport> {
  const description = await describeExecution(deps.sfn, options.executionArn);
  const events = await readExecutionHistory(deps.sfn, options.executionArn);
  const view = viewExecution(description, events);
  const base = {
    executionArn: view.executionArn,
    name: view.name,
    status: view.status,
  };
  if (view.status === 'RUNNING' || view.status === 'SUCCEEDED' || view.status === 'PENDING_REDRIVE') {
    return {
      ...base,
      failed: false,
      failedState: null,
      error: null,
      message: null,
      stepId: null,
      file: null,
      line: null,
      sqlState: null,
      statement: null,
      retries: 0,
      version: view.version,
      nextAction: null,
      rerun: null,
      cause: null,
    };
  }
  // "Record failure" releases the lease and reports the failed task's structured record. An execution that ended
  // without it (aborted, timed out, or failed with an error States.ALL cannot catch: States.DataLimitExceeded,
  // States.Runtime) holds the lease until it expires. An error raised outside the handler (a Lambda timeout,
  // throttling) has no record: its class name is all there is.
  const failure = view.failure;
  const record = failure?.record ?? null;
  const leaseReleased = failure?.leaseReleased ?? false;
  const failedState = failure?.failedState ?? lastFailure(events)?.state ?? view.currentState;
  const error = failure?.error ?? view.error;
  const step = record?.stepId ? options.catalog?.steps.find((s) => s.id === record.stepId) : undefined;
  const statement = step && record?.line != null ? (step.statements.find((s) => s.line === record.line)?.sql ?? null) : null;
  return {
    ...base,
    failed: true,
    failedState,
    error,
    message: record?.message ?? null,
    stepId: record?.stepId ?? null,
    file: record?.file ?? null,
    line: record?.line ?? null,
    sqlState: record?.sqlState ?? null,
    statement,
    retries: failedState === null ? 0 : retriesOf(events, failedState),
    version: failure?.version ?? view.version,
    nextAction: record?.nextAction ?? defaultNextAction(leaseReleased),
    rerun: rerunEffect(leaseReleased, error, record),
    cause: view.cause,
  };
}

/** The most recent FAILED execution of the state machine (ListExecutions lists the most recent first). */
export async function latestFailedExecution(sfn: SFNClient, stateMachineArn: string): Promise<string> {
  const page = await sfnCall(() => sfn.send(new ListExecutionsCommand({ stateMachineArn, statusFilter: 'FAILED', maxResults: 1 })), {
    kind: 'state machine',
    arn: stateMachineArn,
  });
  const latest = page.executions?.[0]?.executionArn;
  if (!latest) throw new NotFoundError(`State machine ${stateMachineArn} has no failed execution.`, 'Name the execution: emc why <execution>.');
  return latest;
}

/** What a new execution with the same input will do, by the error's name. */
export function rerunEffect(leaseReleased: boolean, error: string | null, record: TaskFailure | null): string {
  const stepId = record?.stepId ?? null;
  if (!leaseReleased) {
    return 'The lease of this execution was not released (the failure path did not run): a new execution fails with LeaseHeldError until the lease expires (leaseTtlSeconds, 15 minutes by default; "emc plan" shows it) or "emc unlock" releases it. After that it resumes where this one stopped.';
  }
  switch (error) {
    case 'StepFailedError':
      return record?.transactional === false
        ? `A re-run skips the steps already applied and runs ${stepId ?? 'the failed step'} again from its first statement (it runs outside a transaction, so its statements must be safe to repeat).`
        : `A re-run skips the steps already applied and runs ${stepId ?? 'the failed step'} again in a new transaction (it was rolled back).`;
    case 'LockTimeoutError':
      return `A re-run tries ${stepId ?? 'the step'} again; it succeeds once the transaction holding the lock is gone.`;
    case 'IndexBuildInProgressError':
      return 'A re-run finds the index: a valid one is kept, an invalid one is dropped and built again.';
    case 'LeaseHeldError':
      return 'A re-run fails the same way while the other upgrade holds the lease (until it finishes or its lease expires).';
    case 'LeaseBusyError':
      return 'A re-run takes the lease once the transaction locking its row is gone (the server ends a frozen engine transaction after idleInTransactionTimeoutMs).';
    case 'EngineTimeoutError':
      return 'A re-run meets the same slow statement unless what slowed it is gone (make a slow pending query cheaper); nothing was changed by it.';
    case 'InputError':
      return 'A re-run with the same input fails the same way at "Start upgrade"; nothing was changed.';
    case 'CatalogError':
    case 'DriftError':
    case 'DatabaseAheadError':
    case 'CatalogOrderError':
      return 'A re-run fails the same way at "Start upgrade" until the deployed migrations are fixed; the database was not touched.';
    case 'MigrateStepChangedError':
      return 'A re-run fails the same way until the file is restored, or the execution input names the step in "restartSteps"; the database was not touched.';
    case 'MigrateRunawayError':
      return `A re-run with the same file stops the same way at its next batch; fix ${stepId ?? 'the step'}'s statement and name it in "restartSteps".`;
    case 'PendingRowsRemainError':
      return `A re-run keeps the batches already committed and walks ${stepId ?? 'the step'} again in a new series of passes; it finishes once the rows it counts can be changed.`;
    case 'KeysetKeyError':
      return `A re-run fails the same way before ${stepId ?? 'the step'}'s first batch until its key is fixed; that check writes nothing.`;
    case 'DrainTimeoutError':
    case 'DrainFailedError':
      return 'A re-run finds expand and migrate done and waits for the old release to drain again before contract.';
    default:
      return 'A re-run resumes where this one stopped: applied steps are skipped and migrate steps continue from their saved cursors.';
  }
}

function defaultNextAction(leaseReleased: boolean): string {
  return !leaseReleased
    ? 'Wait for the lease to expire, or release it now with "emc unlock" (this execution has ended), then start the upgrade again once the cause is fixed.'
    : 'Run the upgrade again once the cause is fixed; every phase is safe to re-run and resumes where it stopped.';
}

function lastFailure(events: readonly HistoryEvent[]): { state: string } | undefined {
  let state: string | null = null;
  let found: { state: string } | undefined;
  for (const event of events) {
    if (event.stateEnteredEventDetails?.name) state = event.stateEnteredEventDetails.name;
    if (failureOf(event) && state !== null && state !== C.recordFailure) found = { state };
  }
  return found;
}

/** Task failures of `state` that were followed by another attempt of the same state. */
function retriesOf(events: readonly HistoryEvent[], state: string): number {
  let current: string | null = null;
  let retries = 0;
  let failedAttempt = false;
  for (const event of events) {
    if (event.stateEnteredEventDetails?.name) current = event.stateEnteredEventDetails.name;
    if (current !== state) continue;
    if (failureOf(event)) failedAttempt = true;
    if (failedAttempt && (event.type === 'TaskScheduled' || event.type === 'LambdaFunctionScheduled')) {
      retries++;
      failedAttempt = false;
    }
    if (event.type?.endsWith('StateExited') || event.type?.endsWith('StateEntered')) failedAttempt = false;
  }
  return retries;
}

export function formatWhy(report: WhyReport): string {
  if (!report.failed) {
    return `Execution ${report.name} has not failed: it is ${report.status}${report.version ? ` (version ${report.version})` : ''}.`;
  }
  const where = report.file ? `${report.file}${report.line !== null ? `, statement at line ${report.line}` : ''}` : undefined;
  return keyValues([
    ['Execution', `${report.name} (${report.status})`],
    ['Failed state', report.failedState],
    ['Error', report.error],
    ['Step', report.stepId],
    ['Statement', where],
    ['SQLSTATE', report.sqlState],
    ['SQL', report.statement],
    ['Message', report.message],
    ['Retries', report.retries > 0 ? String(report.retries) : undefined],
    ['Version now', report.version],
    ['Next', report.nextAction],
    ['Re-run', report.rerun],
  ]);
}

interface WhyFlags extends AwsFlags {
  readonly migrations?: string;
  readonly json?: boolean;
}

export function registerWhy(program: Command, host: CommandHost): void {
  const command = program
    .command('why')
    .description('why an execution failed: failed state, error, step, statement, database version and the next safe action')
    .argument('[execution]', 'execution ARN or name (default: the latest FAILED execution of the state machine)')
    .option('--migrations <dir>', 'migrations directory, to print the failed statement\'s SQL');
  addAwsOptions(command);
  addJsonOption(command);
  command.addHelpText('after', '\nExit codes: 0 report printed (also for an execution that has not failed), 6 not found, 7 AWS credentials.');
  command.action(
    host.action(async (reference: string | undefined, flags: WhyFlags) => {
      const executionArn =
        reference === undefined ? await latestFailedExecution(host.sfn(flags), await host.stateMachineArn(flags)) : await host.executionArn(reference, flags);
      const catalog = flags.migrations ? await loadCatalog(flags.migrations) : undefined;
      const report = await explainExecution({ sfn: host.sfn(flags, executionArn) }, { executionArn, catalog });
      if (flags.json) printJson(host.io, report);
      else println(host.io, formatWhy(report));
      return EXIT.ok;
    }),
  );
}
