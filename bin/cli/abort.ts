import { StopExecutionCommand, type SFNClient } from '@aws-sdk/client-sfn';
import type { Command } from 'commander';
import {
  boundedTransaction,
  currentLease,
  DEFAULT_BOUNDS,
  ensureStateSchema,
  readTransaction,
  recordAbort,
  releaseLease,
  type SqlClient,
} from '../../lambdas/core/index.ts';
import { describeExecution, sfnCall } from './aws.ts';
import { CliError } from './cli-errors.ts';
import { addDatabaseOptions, databaseTarget, type DatabaseFlags } from './database.ts';
import { isTerminal } from './execution-view.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import { addJsonOption, type CommandHost } from './host.ts';
import { operatorName } from './operator.ts';
import { printJson, println } from './output.ts';

export interface AbortResult {
  readonly executionArn: string;
  /** The status DescribeExecution reported before anything was done. */
  readonly statusBefore: string;
  /** True when this command stopped it (StopExecution); false when it had already ended. */
  readonly stopped: boolean;
  readonly leaseReleased: boolean;
  /** The lease's owner after the release when it is someone else (another run holds it), else null. */
  readonly leaseHolder: string | null;
}

/**
 * Stops a running execution (StopExecution), releases its lease (a task still in flight then finds its lease gone
 * at its next transaction and writes nothing more), and records the abort in the history table. An execution that
 * has already ended is not stopped; its lease, if it still holds it, is released.
 */
export async function abortExecution(
  deps: { readonly client: SqlClient; readonly sfn: SFNClient },
  options: { readonly executionArn: string; readonly who: string },
): Promise<AbortResult> {
  const { executionArn } = options;
  const statusBefore = (await describeExecution(deps.sfn, executionArn)).status ?? 'UNKNOWN';
  let stopped = false;
  if (!isTerminal(statusBefore)) {
    try {
      await sfnCall(
        () => deps.sfn.send(new StopExecutionCommand({ executionArn, error: 'EmcAborted', cause: `Aborted with emc abort by ${options.who}.` })),
        { kind: 'execution', arn: executionArn },
      );
      stopped = true;
    } catch (error) {
      // It may have ended between the two calls, and what StopExecution answers then is not documented: if it ended,
      // there is nothing left to stop; otherwise the failure stands.
      if (error instanceof CliError) throw error;
      if (!isTerminal((await describeExecution(deps.sfn, executionArn)).status)) throw error;
    }
  }
  await ensureStateSchema(deps.client, DEFAULT_BOUNDS);
  const leaseReleased = await releaseLease(deps.client, executionArn);
  if (stopped) {
    await boundedTransaction(deps.client, DEFAULT_BOUNDS, 'recording the abort in the history', (tx) =>
      recordAbort(tx, executionArn, `aborted with emc abort by ${options.who} (the execution was ${statusBefore})`),
    );
  }
  const holder = await readTransaction(deps.client, DEFAULT_BOUNDS, 'reading the upgrade lease', (tx) => currentLease(tx));
  return { executionArn, statusBefore, stopped, leaseReleased, leaseHolder: holder?.owner ?? null };
}

export function registerAbort(program: Command, host: CommandHost): void {
  const command = program
    .command('abort')
    .description('stop an execution (StopExecution), release its upgrade lease and record the abort in the history')
    .argument('<execution>', 'execution ARN or name')
    .option('--state-machine-arn <arn>', 'the upgrade state machine, to resolve an execution name (env EMC_STATE_MACHINE_ARN)')
    .option('--stack <name>', 'find the state machine by the stack name in its name (env EMC_STACK)');
  addDatabaseOptions(command);
  addJsonOption(command);
  command.addHelpText(
    'after',
    '\nExit codes: 0 stopped (or already ended) and its lease released if it held it, 1 StopExecution failed while it still runs,\n6 execution not found, 7 AWS credentials, 8 database unreachable.',
  );
  command.action(
    host.action(async (reference: string, flags: DatabaseFlags & { stateMachineArn?: string; stack?: string; json?: boolean }): Promise<ExitCode> => {
      const target = databaseTarget(flags, host.context.env);
      const executionArn = await host.executionArn(reference, flags);
      const client = host.context.openDatabase(target);
      try {
        const result = await abortExecution({ client, sfn: host.sfn({}, executionArn) }, { executionArn, who: operatorName(host.context.env) });
        if (flags.json) printJson(host.io, result);
        else {
          println(host.io, result.stopped ? `Stopped ${executionArn} (it was ${result.statusBefore}).` : `${executionArn} had already ended (${result.statusBefore}): not stopped.`);
          println(
            host.io,
            result.leaseReleased
              ? 'Released its upgrade lease.'
              : `It did not hold the upgrade lease${result.leaseHolder ? ` (${result.leaseHolder} holds it)` : ''}: nothing released.`,
          );
          if (result.stopped) println(host.io, 'The abort is recorded in emc.history.');
          println(host.io, 'Next: emc version shows how far the database got; every phase is safe to re-run and resumes where it stopped.');
        }
        return EXIT.ok;
      } finally {
        await client.close().catch(() => {});
      }
    }),
  );
}
