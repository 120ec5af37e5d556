import { hostname } from 'node:os';
import { ListExecutionsCommand, StopExecutionCommand, type ExecutionStatus, type SFNClient } from '@aws-sdk/client-sfn';
import type { Command } from 'commander';
import type { SqlClient } from '../../lambdas/core/sql/sql-client.ts';
import { DEFAULT_BOUNDS, boundedTransaction, readTransaction } from '../../lambdas/core/state/engine-transaction.ts';
import { recordAbort } from '../../lambdas/core/state/history.ts';
import { currentLease, releaseLease } from '../../lambdas/core/state/lease.ts';
import { ensureStateSchema, stateSchemaExists } from '../../lambdas/core/state/schema.ts';
import { describeExecution, isExecutionArn, sfnCall } from './aws.ts';
import { CliError, NotFoundError, UsageError } from './cli-errors.ts';
import { addDatabaseOptions, databaseTarget, type DatabaseFlags } from './database.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import { addJsonOption, type CommandHost } from './host.ts';
import { eprintln, printJson, println } from './output.ts';

/**
 * On-call tools: `emc unlock` (release a lease whose holder is gone), `emc abort` (stop an execution and release its
 * lease) and the latest failed execution for `emc why`.
 */

/**
 * Statuses in which an execution may still run tasks. PENDING_REDRIVE: a redrive was accepted and the execution is
 * about to run again, so its lease is about to be used.
 */
const LIVE_STATUSES: ReadonlySet<ExecutionStatus | undefined> = new Set<ExecutionStatus | undefined>(['RUNNING', 'PENDING_REDRIVE']);

/** The lease's holder execution is still running: releasing its lease would let a second upgrade run beside it. */
export class LeaseHolderRunningError extends CliError {
  override readonly name = 'LeaseHolderRunningError';
  readonly exitCode = EXIT.failed;
  readonly nextAction: string;
  constructor(
    readonly holder: string,
    readonly status: string,
  ) {
    super(`The upgrade lease is held by execution ${holder}, which is ${status}: it was not released.`);
    this.nextAction = `Wait for it to end (emc wait ${holder}), or stop it and release its lease with emc abort ${holder}.`;
  }
}

/** The most recent FAILED execution of the state machine. */
export async function latestFailedExecution(sfn: SFNClient, stateMachineArn: string): Promise<string> {
  const page = await sfnCall(() => sfn.send(new ListExecutionsCommand({ stateMachineArn, statusFilter: 'FAILED', maxResults: 1 })), {
    kind: 'state machine',
    arn: stateMachineArn,
  });
  const latest = page.executions?.[0]?.executionArn;
  if (!latest) throw new NotFoundError(`State machine ${stateMachineArn} has no failed execution.`, 'Name the execution: emc why <execution>.');
  return latest;
}

export interface UnlockResult {
  readonly released: boolean;
  /** The live lease's owner when the command started, or null when no lease was held. */
  readonly holder: string | null;
  /** The holder execution's status, when the holder is an execution Step Functions knows. */
  readonly holderStatus: string | null;
  /** Why the holder could not be checked, when it was released with `force`. */
  readonly forcedBecause: string | null;
}

/**
 * Releases the upgrade lease when its holder is certainly gone: an execution DescribeExecution reports ended.
 * A holder emc cannot check (a hand run of `emc expand|migrate|contract`, any other non-ARN owner, or an execution
 * Step Functions does not find) is released only with `force`; an execution that is running never is.
 */
export async function unlockLease(
  deps: { readonly client: SqlClient; readonly sfn: (arn: string) => SFNClient },
  options: { readonly force: boolean },
): Promise<UnlockResult> {
  const lease = (await stateSchemaExists(deps.client))
    ? await readTransaction(deps.client, DEFAULT_BOUNDS, 'reading the upgrade lease', (tx) => currentLease(tx))
    : undefined;
  if (!lease) return { released: false, holder: null, holderStatus: null, forcedBecause: null };
  const holder = lease.owner;
  let holderStatus: string | null = null;
  let uncheckable: string | null = null;
  if (isExecutionArn(holder)) {
    try {
      holderStatus = (await describeExecution(deps.sfn(holder), holder)).status ?? 'UNKNOWN';
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
      uncheckable = `Step Functions does not find execution ${holder} (${error.message})`;
    }
    if (holderStatus !== null && LIVE_STATUSES.has(holderStatus as ExecutionStatus)) throw new LeaseHolderRunningError(holder, holderStatus);
  } else {
    uncheckable = `the holder ${holder} is not a Step Functions execution (a hand run of emc expand, migrate or contract, or a local run), so emc cannot tell whether it still runs`;
  }
  if (uncheckable !== null && !options.force) {
    throw new UsageError(
      `The upgrade lease was not released: ${uncheckable}. It expires by itself at ${lease.expiresAt.toISOString()}.`,
      'Make sure that run has ended (its process is gone), then release the lease with emc unlock --force.',
    );
  }
  // Only this holder's lease: if another run took it meanwhile, nothing is released.
  const released = await releaseLease(deps.client, holder);
  return { released, holder, holderStatus, forcedBecause: uncheckable };
}

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
  if (LIVE_STATUSES.has(statusBefore as ExecutionStatus)) {
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
      const now = (await describeExecution(deps.sfn, executionArn)).status;
      if (LIVE_STATUSES.has(now)) throw error;
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

/** Who runs this command, for StopExecution's cause and the history. */
export function operator(env: Readonly<Record<string, string | undefined>>): string {
  return `${env['USER'] ?? env['LOGNAME'] ?? 'unknown'}@${hostname()}`;
}

export function registerOnCall(program: Command, host: CommandHost): void {
  const unlock = program
    .command('unlock')
    .description('release the upgrade lease once its holder execution is no longer running (checked with Step Functions)')
    .option('--force', 'also release a lease whose holder cannot be checked (a hand run, an execution Step Functions does not find); never a running execution\'s');
  addDatabaseOptions(unlock);
  addJsonOption(unlock);
  unlock.addHelpText(
    'after',
    '\nExit codes: 0 released (or no lease held), 1 the holder execution is still running, 2 the holder cannot be checked and\n--force was not given, 7 AWS credentials, 8 database unreachable.',
  );
  unlock.action(
    host.action(async (flags: DatabaseFlags & { force?: boolean; json?: boolean }): Promise<ExitCode> => {
      const client = host.context.openDatabase(databaseTarget(flags, host.context.env));
      try {
        const result = await unlockLease({ client, sfn: (arn) => host.sfn({}, arn) }, { force: flags.force === true });
        if (flags.json) printJson(host.io, result);
        else if (result.holder === null) println(host.io, 'No upgrade lease is held: nothing to release.');
        else {
          if (result.forcedBecause) eprintln(host.io, `Warning (--force): ${result.forcedBecause}. If it still runs, its next transaction fails with LeaseLostError, but a statement it already sent (e.g. CREATE INDEX CONCURRENTLY) runs on.`);
          println(
            host.io,
            result.released
              ? `Released the upgrade lease of ${result.holder}${result.holderStatus ? ` (execution ${result.holderStatus})` : ''}.`
              : `The lease of ${result.holder} was gone or taken over meanwhile: nothing released.`,
          );
        }
        return EXIT.ok;
      } finally {
        await client.close().catch(() => {});
      }
    }),
  );

  const abort = program
    .command('abort')
    .description('stop an execution (StopExecution), release its upgrade lease and record the abort in the history')
    .argument('<execution>', 'execution ARN or name')
    .option('--state-machine-arn <arn>', 'the upgrade state machine, to resolve an execution name (env EMC_STATE_MACHINE_ARN)')
    .option('--stack <name>', 'find the state machine by the stack name in its name (env EMC_STACK)');
  addDatabaseOptions(abort);
  addJsonOption(abort);
  abort.addHelpText(
    'after',
    '\nExit codes: 0 stopped (or already ended) and its lease released if it held it, 6 execution not found, 7 AWS credentials,\n8 database unreachable.',
  );
  abort.action(
    host.action(async (reference: string, flags: DatabaseFlags & { stateMachineArn?: string; stack?: string; json?: boolean }): Promise<ExitCode> => {
      const target = databaseTarget(flags, host.context.env);
      const executionArn = await host.executionArn(reference, flags);
      const client = host.context.openDatabase(target);
      try {
        const result = await abortExecution({ client, sfn: host.sfn({}, executionArn) }, { executionArn, who: operator(host.context.env) });
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
