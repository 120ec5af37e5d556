import { ListExecutionsCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { Command } from 'commander';
import { describeExecution, readExecutionHistory, sfnCall } from './aws.ts';
import { NotFoundError } from './cli-errors.ts';
import { viewExecution, type ExecutionView } from './execution-view.ts';
import { EXIT } from './exit-codes.ts';
import { addAwsOptions, addJsonOption, type AwsFlags, type CommandHost } from './host.ts';
import { formatCount, formatDuration, formatTime, keyValues, printJson, println } from './output.ts';
import { rowsText } from './progress.ts';

/** Which execution: the one given, or the most recent of the state machine. */
export type ExecutionChoice = { readonly executionArn: string } | { readonly latestOf: string };

/** One execution's status, current step, progress and composite version, from DescribeExecution and its history. */
export async function executionStatus(deps: { readonly sfn: SFNClient }, choice: ExecutionChoice): Promise<ExecutionView> {
  const executionArn = 'executionArn' in choice ? choice.executionArn : await latestExecution(deps.sfn, choice.latestOf);
  const description = await describeExecution(deps.sfn, executionArn);
  return viewExecution(description, await readExecutionHistory(deps.sfn, executionArn));
}

/** The most recent execution (ListExecutions lists the most recent first). */
export async function latestExecution(sfn: SFNClient, stateMachineArn: string): Promise<string> {
  const page = await sfnCall(() => sfn.send(new ListExecutionsCommand({ stateMachineArn, maxResults: 1 })), {
    kind: 'state machine',
    arn: stateMachineArn,
  });
  const latest = page.executions?.[0]?.executionArn;
  if (!latest) {
    throw new NotFoundError(`State machine ${stateMachineArn} has no executions yet.`, 'Start one with: emc start --wait');
  }
  return latest;
}

/** The human form of an execution; `now` measures how long a running execution has run. */
export function formatExecution(view: ExecutionView, now = Date.now()): string {
  const ended = view.stopDate;
  const elapsed = view.startDate === undefined ? undefined : (ended ? Date.parse(ended) : now) - Date.parse(view.startDate);
  const target =
    view.target === null ? undefined : `${view.target} (${view.stopAfter ? `stop after ${view.stopAfter}` : 'full upgrade'})`;
  const version =
    view.version === null
      ? undefined
      : view.versionBefore !== null && view.versionBefore !== view.version
        ? `${view.version} (was ${view.versionBefore})`
        : view.version;
  const pending = view.pending
    ? `expand ${view.pending.expand.length}, migrate ${view.pending.migrate.length}, contract ${view.pending.contract.length} (at start)`
    : undefined;
  const rows = view.migrate ? rowsText(view) : view.rowsMigrated !== null ? `${formatCount(view.rowsMigrated)} rows migrated` : undefined;
  return keyValues([
    ['Execution', `${view.name}`],
    ['ARN', view.executionArn],
    ['Status', `${view.status}${elapsed === undefined ? '' : `, ${ended ? 'ran' : 'running for'} ${formatDuration(elapsed)}`}`],
    ['Started', formatTime(view.startDate)],
    ['Current step', view.currentState ?? undefined],
    ['Target', target],
    ['Version', version],
    ['Pending', pending],
    ['Migrated', rows ?? undefined],
    ['Drain', view.drain ? (view.drain.drained ? 'old release drained' : view.drain.summary) : undefined],
    ['Error', view.error ?? undefined],
    ['Continued in', view.continuedIn ? `${view.continuedIn} (the migration goes on there: emc status ${view.continuedIn})` : undefined],
  ]);
}

interface StatusFlags extends AwsFlags {
  readonly json?: boolean;
}

export function registerStatus(program: Command, host: CommandHost): void {
  const command = program
    .command('status')
    .description('status, current step, migrate progress and composite version of an execution (default: the latest)')
    .argument('[execution]', 'execution ARN or name (default: the most recent execution)');
  addAwsOptions(command);
  addJsonOption(command);
  command.addHelpText('after', '\nExit codes: 0 report printed (whatever the execution\'s status), 6 not found, 7 AWS credentials.');
  command.action(
    host.action(async (reference: string | undefined, flags: StatusFlags) => {
      const choice: ExecutionChoice = reference
        ? { executionArn: await host.executionArn(reference, flags) }
        : { latestOf: await host.stateMachineArn(flags) };
      const view = await executionStatus(
        { sfn: host.sfn(flags, 'executionArn' in choice ? choice.executionArn : choice.latestOf) },
        choice,
      );
      if (flags.json) printJson(host.io, view);
      else println(host.io, formatExecution(view, host.context.now()));
      return EXIT.ok;
    }),
  );
}
