import type { SFNClient } from '@aws-sdk/client-sfn';
import type { Command } from 'commander';
import {
  currentLease,
  DEFAULT_BOUNDS,
  readTransaction,
  releaseLease,
  stateSchemaExists,
  type SqlClient,
} from '../../lambdas/core/index.ts';
import { describeExecution, isExecutionArn } from './aws.ts';
import { CliError, NotFoundError, UsageError } from './cli-errors.ts';
import { addDatabaseOptions, databaseTarget, type DatabaseFlags } from './database.ts';
import { isTerminal } from './execution-view.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import { addJsonOption, type CommandHost } from './host.ts';
import { eprintln, printJson, println } from './output.ts';

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
 * Step Functions does not find) is released only with `force`; an execution that may still run never is.
 * DescribeExecution is eventually consistent: a stale answer can only be an execution still shown running (refused),
 * or one just redriven still shown ended, whose tasks then find their lease gone (LeaseLostError) and write nothing.
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
    if (holderStatus !== null && !isTerminal(holderStatus)) throw new LeaseHolderRunningError(holder, holderStatus);
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

export function registerUnlock(program: Command, host: CommandHost): void {
  const command = program
    .command('unlock')
    .description('release the upgrade lease once its holder execution is no longer running (checked with Step Functions)')
    .option('--force', 'also release a lease whose holder cannot be checked (a hand run, an execution Step Functions does not find); never a running execution\'s');
  addDatabaseOptions(command);
  addJsonOption(command);
  command.addHelpText(
    'after',
    '\nExit codes: 0 released (or no lease held), 1 the holder execution is still running, 2 the holder cannot be checked and\n--force was not given, 7 AWS credentials, 8 database unreachable.',
  );
  command.action(
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
}
