import type { Command } from 'commander';
import { plan, type Plan } from '../../lambdas/core/index.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import type { CommandHost } from './host.ts';
import { formatCount, keyValues, printJson, println, table } from './output.ts';
import { addDatabaseCommandOptions, withDatabase, type DatabaseCommandFlags, type DatabaseDependencies } from './version.ts';

/** What an execution to `release` would run, step by step, without running it (the engine's read-only plan). */
export async function planUpgrade(deps: DatabaseDependencies, options: { readonly release?: string } = {}): Promise<Plan> {
  return plan(deps.client, deps.catalog, options.release);
}

export function formatPlan(planned: Plan): string {
  const rows = [
    ...planned.pending.expand.map((s) => ['expand', s.stepId, s.file, s.transactional ? 'transaction' : 'no transaction']),
    ...planned.pending.migrate.map((s) => [
      'migrate',
      s.stepId,
      s.file,
      `${s.strategy}${s.rowsDone > 0 ? `, ${formatCount(s.rowsDone)} rows done` : ''}`,
    ]),
    ...planned.pending.contract.map((s) => ['contract', s.stepId, s.file, s.transactional ? 'transaction' : 'no transaction']),
  ];
  return [
    keyValues([
      ['Version', planned.version],
      ['Target release', planned.target],
      ['Next phase', planned.nextPhase ?? 'none: the database is at the target'],
      ['Lease', planned.lease ? `held by ${planned.lease.owner} until ${planned.lease.expiresAt}` : undefined],
    ]),
    ...(rows.length ? ['', table(['PHASE', 'STEP', 'FILE', 'HOW'], rows)] : []),
    ...(planned.contractBlockedBy.length ? ['', 'Contract is blocked until:', ...planned.contractBlockedBy.map((r) => `  - ${r}`)] : []),
    ...(planned.lintOverrides.length
      ? [
          '',
          'Checks overridden by emc:allow-destructive or emc:no-pending, with their reasons:',
          ...planned.lintOverrides.flatMap((o) => [`  - ${o.stepId}: ${o.reason}`, ...o.findings.map((f) => `      ${f}`)]),
        ]
      : []),
  ].join('\n');
}

export function registerPlan(program: Command, host: CommandHost): void {
  const command = program
    .command('plan')
    .description('what an execution would run (pending steps per phase), without running it; reads the database');
  addDatabaseCommandOptions(command);
  command.addHelpText('after', '\nExit codes: 0 printed, 2 unknown release or no database given, 8 database unreachable, 9 invalid migrations, 11 database does not match the migrations.');
  command.action(
    host.action(async (flags: DatabaseCommandFlags): Promise<ExitCode> => {
      const planned = await withDatabase(host, flags, (deps) => planUpgrade(deps, { release: flags.release }));
      if (flags.json) printJson(host.io, planned);
      else println(host.io, formatPlan(planned));
      return EXIT.ok;
    }),
  );
}
