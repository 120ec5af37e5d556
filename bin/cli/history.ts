import type { HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import type { Command } from 'commander';
import { errorMessageOf, taskFailureOf } from '../../lambdas/core/workflow/index.ts';
import { describeExecution, readExecutionHistory } from './aws.ts';
import { taskResultOf, type ExecutionStatus, type TaskResultEvent } from './execution-view.ts';
import { EXIT } from './exit-codes.ts';
import { addAwsOptions, addJsonOption, type AwsFlags, type CommandHost } from './host.ts';
import { formatCount, formatDuration, formatTime, printJson, println, table } from './output.ts';

export type HistoryEntryKind =
  | 'started'
  | 'entered'
  | 'exited'
  | 'retried'
  | 'failed'
  | 'succeeded'
  | 'execution failed'
  | 'timed out'
  | 'aborted';

/** One line of an execution's step history. */
export interface ExecutionHistoryEntry {
  readonly eventId: number;
  readonly time: string;
  readonly kind: HistoryEntryKind;
  readonly state: string | null;
  /** For `exited`: time since the state was entered. */
  readonly durationMs: number | null;
  /** Rows migrated, a drain summary, an error and its message... */
  readonly detail: string | null;
}

export interface ExecutionHistoryReport {
  readonly executionArn: string;
  readonly name: string;
  readonly status: ExecutionStatus;
  readonly entries: readonly ExecutionHistoryEntry[];
}

/** Failure events of a task attempt (Lambda ARN resources report LambdaFunction*, service integrations Task*). */
const TASK_FAILURES = new Set([
  'TaskFailed',
  'TaskTimedOut',
  'TaskStartFailed',
  'TaskSubmitFailed',
  'LambdaFunctionFailed',
  'LambdaFunctionTimedOut',
  'LambdaFunctionStartFailed',
  'LambdaFunctionScheduleFailed',
]);

/** The Error and Cause of a failed task attempt, or undefined for any other event. */
export function failureOf(event: HistoryEvent): { error: string; cause: string } | undefined {
  if (!event.type || !TASK_FAILURES.has(event.type)) return undefined;
  const details =
    event.taskFailedEventDetails ??
    event.taskTimedOutEventDetails ??
    event.taskStartFailedEventDetails ??
    event.taskSubmitFailedEventDetails ??
    event.lambdaFunctionFailedEventDetails ??
    event.lambdaFunctionTimedOutEventDetails ??
    event.lambdaFunctionStartFailedEventDetails ??
    event.lambdaFunctionScheduleFailedEventDetails;
  return { error: details?.error ?? event.type, cause: details?.cause ?? '' };
}

/** The full step history of an execution, every page of GetExecutionHistory. */
export async function executionHistory(
  deps: { readonly sfn: SFNClient },
  options: { readonly executionArn: string },
): Promise<ExecutionHistoryReport> {
  const description = await describeExecution(deps.sfn, options.executionArn);
  const events = await readExecutionHistory(deps.sfn, options.executionArn);
  return {
    executionArn: options.executionArn,
    name: description.name ?? '',
    status: (description.status ?? 'RUNNING') as ExecutionStatus,
    entries: historyEntries(events),
  };
}

/**
 * One entry per state entered and exited, per task attempt that failed (`retried` when the state tried again,
 * `failed` when it did not), and for the execution's start and end.
 */
export function historyEntries(events: readonly HistoryEvent[]): ExecutionHistoryEntry[] {
  const entries: ExecutionHistoryEntry[] = [];
  const enteredAt = new Map<string, number>();
  let state: string | null = null;
  let lastResult: { state: string; result: TaskResultEvent } | undefined;
  events.forEach((event, index) => {
    const result = taskResultOf(event, state);
    if (result && state !== null) lastResult = { state, result };
    const time = event.timestamp ?? new Date(0);
    const entry = (kind: HistoryEntryKind, detail: string | null = null, durationMs: number | null = null) =>
      entries.push({ eventId: event.id ?? index + 1, time: time.toISOString(), kind, state, durationMs, detail });
    const type = event.type ?? '';
    if (type === 'ExecutionStarted') {
      state = null;
      entry('started', event.executionStartedEventDetails?.input ? `input ${compactJson(event.executionStartedEventDetails.input)}` : null);
    } else if (type.endsWith('StateEntered') && event.stateEnteredEventDetails?.name) {
      state = event.stateEnteredEventDetails.name;
      enteredAt.set(state, time.getTime());
      entry('entered');
    } else if (type.endsWith('StateExited') && event.stateExitedEventDetails?.name) {
      state = event.stateExitedEventDetails.name;
      const since = enteredAt.get(state);
      const detail = lastResult?.state === state ? resultDetail(lastResult.result) : null;
      lastResult = undefined;
      entry('exited', detail, since === undefined ? null : time.getTime() - since);
    } else if (failureOf(event)) {
      const failure = failureOf(event)!;
      entry(retriedAfter(events, index) ? 'retried' : 'failed', `${failure.error}: ${firstLine(causeMessage(failure.cause))}`);
    } else if (type === 'ExecutionSucceeded') {
      entry('succeeded');
    } else if (type === 'ExecutionFailed') {
      const d = event.executionFailedEventDetails;
      entry('execution failed', `${d?.error ?? 'error'}: ${firstLine(causeMessage(d?.cause ?? ''))}`);
    } else if (type === 'ExecutionTimedOut') {
      entry('timed out', event.executionTimedOutEventDetails?.error ?? null);
    } else if (type === 'ExecutionAborted') {
      entry('aborted', event.executionAbortedEventDetails?.cause ?? null);
    }
  });
  return entries;
}

/** Whether the task attempt that failed at `index` was followed by another attempt before its state exited. */
function retriedAfter(events: readonly HistoryEvent[], index: number): boolean {
  for (const next of events.slice(index + 1)) {
    if (next.type === 'TaskScheduled' || next.type === 'LambdaFunctionScheduled') return true;
    if (next.type?.endsWith('StateExited') || next.type?.startsWith('Execution')) return false;
  }
  return false;
}

/** What a task's result says, in one line. */
function resultDetail(result: TaskResultEvent): string | null {
  switch (result.task) {
    case 'start': {
      const { target, versionBefore, pending } = result.value;
      return `target ${target}, version ${versionBefore}, pending expand ${pending.expand.length} / migrate ${pending.migrate.length} / contract ${pending.contract.length}`;
    }
    case 'recordOldRelease': {
      const services = Object.entries(result.value).map(([service, definitions]) => `${service} ${definitions.join(', ') || '(none)'}`);
      return `old release: ${services.join('; ') || 'no service'}`;
    }
    case 'expand':
    case 'contract': {
      const { stepsRun, versionAfter } = result.value;
      return `${stepsRun.length} step${stepsRun.length === 1 ? '' : 's'} run${stepsRun.length ? ` (${stepsRun.join(', ')})` : ''}, version ${versionAfter}`;
    }
    case 'migrate': {
      const m = result.value;
      const remaining = m.rowsRemaining !== null ? `, ~${formatCount(m.rowsRemaining)} remaining` : '';
      return `${formatCount(m.rowsThisCall)} rows this call, ${formatCount(m.rowsDone)} done${remaining}${m.finished ? ', finished' : ''}`;
    }
    case 'drain':
      return result.value.drained ? 'drained' : `not drained: ${firstLine(result.value.summary)}`;
    case 'finish':
      return `version ${result.value.versionAfter}, ${formatCount(result.value.rowsMigrated)} rows migrated`;
    case 'recordFailure':
      return `version ${result.value.version}, lease ${result.value.leaseReleased ? 'released' : 'not released'}`;
  }
}

/** A failed attempt's message: the failure record's (a TaskFailedError), else what Lambda or Step Functions said. */
export function causeMessage(cause: string): string {
  return taskFailureOf(cause)?.message ?? errorMessageOf(cause) ?? cause;
}

function firstLine(text: string): string {
  return text.split('\n')[0] ?? '';
}

function compactJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text));
  } catch {
    return text;
  }
}

export function formatHistory(report: ExecutionHistoryReport): string {
  const rows = report.entries.map((e) => [
    formatTime(e.time)!.replace(' UTC', ''),
    e.kind,
    e.state ?? '',
    [e.durationMs !== null ? `(${formatDuration(e.durationMs)})` : '', e.detail ?? ''].filter(Boolean).join(' '),
  ]);
  return [`Execution ${report.name} (${report.status}), times in UTC:`, table(['TIME', 'EVENT', 'STATE', 'DETAIL'], rows)].join('\n');
}

interface HistoryFlags extends AwsFlags {
  readonly json?: boolean;
}

export function registerHistory(program: Command, host: CommandHost): void {
  const command = program
    .command('history')
    .description('the step history of an execution: each state entered, exited, failed or retried, with times')
    .argument('<execution>', 'execution ARN or name');
  addAwsOptions(command);
  addJsonOption(command);
  command.addHelpText('after', '\nExit codes: 0 history printed, 6 not found, 7 AWS credentials.');
  command.action(
    host.action(async (reference: string, flags: HistoryFlags) => {
      const executionArn = await host.executionArn(reference, flags);
      const report = await executionHistory({ sfn: host.sfn(flags, executionArn) }, { executionArn });
      if (flags.json) printJson(host.io, report);
      else println(host.io, formatHistory(report));
      return EXIT.ok;
    }),
  );
}
