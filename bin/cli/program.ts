import { Command, CommanderError } from 'commander';
import { registerAbort } from './abort.ts';
import { registerCheck } from './check.ts';
import { EXIT, exitCodeHelp } from './exit-codes.ts';
import { registerHistory } from './history.ts';
import { CommandHost, type CliContext } from './host.ts';
import { registerLint } from './lint.ts';
import { registerLocal } from './local.ts';
import { registerNew } from './new.ts';
import { packageVersion } from './package-version.ts';
import { registerPhases } from './phases.ts';
import { registerPlan } from './plan.ts';
import { registerStart } from './start.ts';
import { registerStatus } from './status.ts';
import { registerUnlock } from './unlock.ts';
import { registerVersion } from './version.ts';
import { registerWait } from './wait.ts';
import { registerWhy } from './why.ts';

/**
 * The `emc` program. Each command lives in its own file as a library function (returning data, taking its
 * clients as parameters) plus a thin commander layer that prints and returns the exit code.
 */
export function createProgram(host: CommandHost): Command {
  const program = new Command('emc')
    .description('Zero-downtime Expand-Migrate-Contract upgrades of Aurora PostgreSQL, run by AWS Step Functions.')
    .version(packageVersion(), '-V, --version', 'print the version of emc-upgrade')
    .exitOverride()
    .configureOutput({
      writeOut: (text) => host.io.stdout(text),
      writeErr: (text) => host.io.stderr(text),
    })
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      [
        '',
        'The state machine is --state-machine-arn, else EMC_STATE_MACHINE_ARN, else the only state machine whose name',
        'contains the stack name (--stack, EMC_STACK, default EmcUpgrade) or starts with "UpgradeStateMachine".',
        '',
        exitCodeHelp(),
      ].join('\n'),
    );
  registerStart(program, host);
  registerWait(program, host);
  registerStatus(program, host);
  registerWhy(program, host);
  registerHistory(program, host);
  registerVersion(program, host);
  registerCheck(program, host);
  registerPlan(program, host);
  registerLint(program, host);
  registerLocal(program, host);
  registerNew(program, host);
  registerPhases(program, host);
  registerUnlock(program, host);
  registerAbort(program, host);
  return program;
}

/** Runs `emc` with `argv` (without the node and script paths) and returns the exit code; never calls process.exit. */
export async function runCli(argv: readonly string[], context: CliContext): Promise<number> {
  const host = new CommandHost(context);
  const program = createProgram(host);
  try {
    await program.parseAsync([...argv], { from: 'user' });
  } catch (error) {
    if (error instanceof CommanderError) {
      // Help and version are exits with code 0; every parse error is a usage error.
      return error.exitCode === 0 ? EXIT.ok : EXIT.usage;
    }
    throw error;
  }
  return host.exitCode;
}
