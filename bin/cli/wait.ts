import type { HistoryEvent, SFNClient } from '@aws-sdk/client-sfn';
import { Option, type Command } from 'commander';
import { describeExecution, readEventsAfter } from './aws.ts';
import { isTerminal, viewExecution, type ExecutionView } from './execution-view.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import { addAwsOptions, addJsonOption, positiveNumber, type AwsFlags, type CommandHost } from './host.ts';
import { formatExecution } from './status.ts';
import { eprintln, printJson, println, type Io } from './output.ts';
import { progressReporter } from './progress.ts';

export const DEFAULT_POLL_INTERVAL_SECONDS = 5;

export type WaitUntil = 'end' | 'drain-wait';
/**
 * How waiting ended: the execution succeeded or failed (FAILED, TIMED_OUT, ABORTED), it reached the drain wait
 * (`until: 'drain-wait'`), or `timeoutMs` ran out first (the execution goes on).
 */
export type WaitOutcome = 'succeeded' | 'failed' | 'drain-wait' | 'timed-out';

export interface WaitOptions {
  readonly executionArn: string;
  readonly until: WaitUntil;
  readonly pollIntervalMs: number;
  readonly timeoutMs?: number;
  /** Called after every poll with what is known so far. */
  readonly onUpdate?: (view: ExecutionView, fresh: readonly HistoryEvent[]) => void;
}

export interface WaitResult {
  readonly outcome: WaitOutcome;
  /** The execution waited for last: the one the upgrade went on in, when it continued in new executions. */
  readonly execution: ExecutionView;
  /** The executions that ended by continuing the migration in a new one, in order (usually none). */
  readonly continuedFrom: readonly string[];
}

export interface WaitDependencies {
  readonly sfn: SFNClient;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
}

/**
 * Polls an execution (DescribeExecution, then only the history events not seen yet) until it ends, or until it
 * enters a drain-wait state with `until: 'drain-wait'` (an execution that succeeds without one counts as
 * succeeded: there is nothing left to wait for).
 */
export async function waitForExecution(deps: WaitDependencies, options: WaitOptions): Promise<WaitResult> {
  const started = deps.now();
  let events: HistoryEvent[] = [];
  let executionArn = options.executionArn;
  const continuedFrom: string[] = [];
  for (;;) {
    // Describe first: once it says the execution ended, the history read after it holds every event.
    const description = await describeExecution(deps.sfn, executionArn);
    const lastId = events.length ? (events[events.length - 1]!.id ?? 0) : 0;
    const fresh = await readEventsAfter(deps.sfn, executionArn, lastId);
    events.push(...fresh);
    const view = viewExecution(description, events);
    options.onUpdate?.(view, fresh);
    if (options.until === 'drain-wait' && view.reachedDrainWait && !isTerminal(view.status)) {
      return { outcome: 'drain-wait', execution: view, continuedFrom };
    }
    // An execution that handed a long migration to a new one: the upgrade goes on there.
    const next = view.status === 'SUCCEEDED' ? (view.continuedIn ?? undefined) : undefined;
    if (next !== undefined) {
      // Not done: the migration goes on in a new execution (before this one's history limit). Follow it.
      continuedFrom.push(executionArn);
      executionArn = next;
      events = [];
      continue;
    }
    if (isTerminal(view.status)) {
      return { outcome: view.status === 'SUCCEEDED' ? 'succeeded' : 'failed', execution: view, continuedFrom };
    }
    if (options.timeoutMs !== undefined && deps.now() - started >= options.timeoutMs) {
      return { outcome: 'timed-out', execution: view, continuedFrom };
    }
    await deps.sleep(options.pollIntervalMs);
  }
}

export function waitExitCode(outcome: WaitOutcome): ExitCode {
  switch (outcome) {
    case 'succeeded':
    case 'drain-wait':
      return EXIT.ok;
    case 'failed':
      return EXIT.failed;
    case 'timed-out':
      return EXIT.waitTimedOut;
  }
}

/** Prints how waiting ended (the human form) and returns the exit code. */
export function reportWait(io: Io, result: WaitResult, json: boolean, extra: Record<string, unknown> = {}, now = Date.now()): ExitCode {
  const exitCode = waitExitCode(result.outcome);
  if (json) {
    printJson(io, { ...extra, outcome: result.outcome, exitCode, execution: result.execution });
    return exitCode;
  }
  const view = result.execution;
  for (const arn of result.continuedFrom) println(io, `Execution ${arn} continued the migration in a new execution.`);
  switch (result.outcome) {
    case 'succeeded':
      println(io, `Execution ${view.name} SUCCEEDED.`);
      break;
    case 'drain-wait':
      println(io, `Execution ${view.name} is waiting for the old release to drain: expand and migrate are done; deploy the new release now.`);
      break;
    case 'failed':
      println(io, `Execution ${view.name} ${view.status}.`);
      break;
    case 'timed-out':
      println(io, `Stopped waiting: --timeout elapsed; execution ${view.name} is still ${view.status}.`);
      break;
  }
  println(io, formatExecution(view, now));
  if (result.outcome === 'failed') {
    eprintln(io, `Upgrade ${view.status}${view.error ? ` with ${view.error}` : ''}. For the failed step and the next safe action: emc why ${view.executionArn}`);
  }
  return exitCode;
}

interface WaitFlags extends AwsFlags {
  readonly until?: 'drain-wait';
  readonly timeout?: number;
  readonly pollInterval: number;
  readonly json?: boolean;
}

export function registerWait(program: Command, host: CommandHost): void {
  const command = program
    .command('wait')
    .description('wait for an execution to end (or to reach the drain wait) and show its progress')
    .argument('<execution>', 'execution ARN, or execution name (resolved against the state machine)')
    .addOption(
      new Option('--until <point>', 'return as soon as the execution waits for the old release to drain (exit 0)').choices(['drain-wait']),
    )
    .option('--timeout <minutes>', 'stop waiting after this long (exit 10; the execution goes on)', positiveNumber('--timeout'))
    .option('--poll-interval <seconds>', 'seconds between two polls', positiveNumber('--poll-interval'), DEFAULT_POLL_INTERVAL_SECONDS);
  addAwsOptions(command);
  addJsonOption(command);
  command.addHelpText(
    'after',
    '\nExit codes: 0 SUCCEEDED (or the drain wait reached with --until drain-wait), 1 FAILED/TIMED_OUT/ABORTED, 6 not found, 7 AWS credentials, 10 --timeout elapsed.',
  );
  command.action(
    host.action(async (reference: string, flags: WaitFlags) => {
      const executionArn = await host.executionArn(reference, flags);
      const progress = flags.json ? undefined : progressReporter(host.io);
      const result = await waitForExecution(
        { sfn: host.sfn(flags, executionArn), sleep: host.context.sleep, now: host.context.now },
        {
          executionArn,
          until: flags.until ?? 'end',
          pollIntervalMs: flags.pollInterval * 1000,
          timeoutMs: flags.timeout === undefined ? undefined : flags.timeout * 60_000,
          onUpdate: progress ? (view, fresh) => progress.update(view, fresh) : undefined,
        },
      );
      progress?.done();
      return reportWait(host.io, result, flags.json === true, {}, host.context.now());
    }),
  );
}
