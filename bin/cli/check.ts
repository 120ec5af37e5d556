import type { Command } from 'commander';
import type { Phase } from '../../lambdas/core/index.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import type { CommandHost } from './host.ts';
import { printJson, println } from './output.ts';
import {
  addDatabaseCommandOptions,
  databaseReport,
  formatDatabaseReport,
  withDatabase,
  type DatabaseCommandFlags,
  type DatabaseDependencies,
  type DatabaseReport,
} from './version.ts';

const PENDING_EXIT: Readonly<Record<Phase, ExitCode>> = {
  expand: EXIT.expandPending,
  migrate: EXIT.migratePending,
  contract: EXIT.contractPending,
};

export interface CheckResult extends DatabaseReport {
  /** 0 up to date; 3, 4 or 5 when expand, migrate or contract is the first phase with work left. */
  readonly exitCode: ExitCode;
}

/** Like Glance's `db check`: is the database at the target release, and if not, which phase comes next. */
export async function checkDatabase(deps: DatabaseDependencies, options: { readonly release?: string } = {}): Promise<CheckResult> {
  const report = await databaseReport(deps, options);
  return { ...report, exitCode: report.nextPhase === null ? EXIT.ok : PENDING_EXIT[report.nextPhase] };
}

export function registerCheck(program: Command, host: CommandHost): void {
  const command = program
    .command('check')
    .description('exit 0 when the database is at the target release, 3/4/5 when expand/migrate/contract is pending');
  addDatabaseCommandOptions(command);
  command.addHelpText(
    'after',
    '\nExit codes: 0 up to date, 3 expand pending, 4 migrate pending, 5 contract pending (or blocked), 2 unknown release,\n8 database unreachable, 9 invalid migrations, 11 database does not match the migrations.',
  );
  command.action(
    host.action(async (flags: DatabaseCommandFlags): Promise<ExitCode> => {
      const result = await withDatabase(host, flags, (deps) => checkDatabase(deps, { release: flags.release }));
      if (flags.json) printJson(host.io, result);
      else println(host.io, formatDatabaseReport(result));
      return result.exitCode;
    }),
  );
}
