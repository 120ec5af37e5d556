import type { Command } from 'commander';
import { loadCatalog, plan, type Catalog, type Phase, type SqlClient } from '../../lambdas/core/index.ts';
import { addDatabaseOptions, databaseTarget, type DatabaseFlags } from './database.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import { addJsonOption, addMigrationsOption, type CommandHost } from './host.ts';
import { keyValues, printJson, println } from './output.ts';

/** Where a database stands against the migrations, read directly from the database (read-only). */
export interface DatabaseReport {
  /** The composite version, e.g. `bexar_expand03, bexar_contract01`, or `(none)`. */
  readonly version: string;
  readonly target: string;
  /** The first phase with work left, or null when the database is at the target. */
  readonly nextPhase: Phase | null;
  readonly upToDate: boolean;
  readonly pending: { readonly expand: readonly string[]; readonly migrate: readonly string[]; readonly contract: readonly string[] };
  /** Why contract could not run yet besides the drain (rows a migration still has to do, ...). */
  readonly contractBlockedBy: readonly string[];
  readonly lease: { readonly owner: string; readonly expiresAt: string } | null;
}

export interface DatabaseDependencies {
  readonly client: SqlClient;
  readonly catalog: Catalog;
}

/** The composite version and the pending steps per phase, from the engine's read-only `plan`. */
export async function databaseReport(deps: DatabaseDependencies, options: { readonly release?: string } = {}): Promise<DatabaseReport> {
  const planned = await plan(deps.client, deps.catalog, options.release);
  return {
    version: planned.version,
    target: planned.target,
    nextPhase: planned.nextPhase,
    upToDate: planned.nextPhase === null,
    pending: {
      expand: planned.pending.expand.map((s) => s.stepId),
      migrate: planned.pending.migrate.map((s) => s.stepId),
      contract: planned.pending.contract.map((s) => s.stepId),
    },
    contractBlockedBy: planned.contractBlockedBy,
    lease: planned.lease,
  };
}

export function formatDatabaseReport(report: DatabaseReport): string {
  const list = (ids: readonly string[]) => (ids.length === 0 ? 'none' : `${ids.length}: ${ids.join(', ')}`);
  return keyValues([
    ['Version', report.version],
    ['Target release', report.target],
    ['State', report.upToDate ? 'up to date' : `${report.nextPhase} pending`],
    ['Pending expand', list(report.pending.expand)],
    ['Pending migrate', list(report.pending.migrate)],
    ['Pending contract', list(report.pending.contract)],
    ['Contract blocked', report.contractBlockedBy.length ? report.contractBlockedBy.join('\n') : undefined],
    ['Lease', report.lease ? `held by ${report.lease.owner} until ${report.lease.expiresAt}` : undefined],
  ]);
}

export interface DatabaseCommandFlags extends DatabaseFlags {
  readonly migrations: string;
  readonly release?: string;
  readonly json?: boolean;
}

/** Opens the database of the flags, loads the catalog, runs `work`, closes the database. */
export async function withDatabase<T>(host: CommandHost, flags: DatabaseCommandFlags, work: (deps: DatabaseDependencies) => Promise<T>): Promise<T> {
  const target = databaseTarget(flags, host.context.env);
  const catalog = await loadCatalog(flags.migrations);
  const client = host.context.openDatabase(target);
  try {
    return await work({ client, catalog });
  } finally {
    await client.close().catch(() => {});
  }
}

/** The options `version`, `check` and `plan` share. */
export function addDatabaseCommandOptions(command: Command): Command {
  addDatabaseOptions(command);
  addMigrationsOption(command);
  command.option('--release <release>', 'target release (default: the newest in --migrations)');
  return addJsonOption(command);
}

export function registerVersion(program: Command, host: CommandHost): void {
  const command = program
    .command('version')
    .description('the database\'s composite version and the steps pending per phase, read from the database');
  addDatabaseCommandOptions(command);
  command.addHelpText('after', '\nExit codes: 0 printed, 2 unknown release or no database given, 8 database unreachable, 9 invalid migrations, 11 database does not match the migrations.');
  command.action(
    host.action(async (flags: DatabaseCommandFlags): Promise<ExitCode> => {
      const report = await withDatabase(host, flags, (deps) => databaseReport(deps, { release: flags.release }));
      if (flags.json) printJson(host.io, report);
      else println(host.io, formatDatabaseReport(report));
      return EXIT.ok;
    }),
  );
}
