import type { Command } from 'commander';
import { checkLockSafety, formatLockFindings, loadCatalog, type LockSafety } from '../../lambdas/core/index.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import { addJsonOption, addMigrationsOption, type CommandHost } from './host.ts';
import { printJson, println } from './output.ts';

export interface LintReport extends LockSafety {
  readonly directory: string;
  readonly steps: number;
}

/**
 * The whole offline check of a migrations directory, the one `cdk synth` runs (lib/catalog-at-synth.ts): the
 * catalog's validation (every problem at once, a `CatalogError`), then the lock-safety lint. Reads only files; runs
 * squawk as a child process (`binary` overrides where it is found).
 */
export async function lintMigrations(directory: string, options: { readonly binary?: string } = {}): Promise<LintReport> {
  const catalog = await loadCatalog(directory);
  return { directory, steps: catalog.steps.length, ...checkLockSafety(catalog, options) };
}

export function formatLintReport(report: LintReport): string {
  return [
    ...(report.findings.length > 0 ? [formatLockFindings(report.findings)] : []),
    ...(report.allowed.length > 0
      ? ['Allowed by emc:allow-lock, with their reasons:', ...report.allowed.map((a) => `  ${a.file}:${a.line}: ${a.rule}: ${a.reason}`)]
      : []),
    report.findings.length === 0
      ? `${report.directory}: ${report.steps} step${report.steps === 1 ? '' : 's'}, no lock-safety finding.`
      : `${report.directory}: refused; fix each finding, or allow it in its file with a reason.`,
  ].join('\n');
}

export function registerLint(program: Command, host: CommandHost): void {
  const command = program
    .command('lint')
    .description('validate the migrations directory and check each step for lock-safety problems (squawk), offline');
  addMigrationsOption(command);
  command.option('--squawk <path>', "the squawk executable to run (default: squawk-cli's binary for this platform)");
  addJsonOption(command);
  command.addHelpText(
    'after',
    `\nExit codes: ${EXIT.ok} clean, ${EXIT.catalogInvalid} invalid migrations, ${EXIT.lintFindings} lock-safety findings, ${EXIT.lintUnavailable} squawk cannot run here.\n` +
      'A finding that is safe in its file is allowed by a line "-- emc:allow-lock <rule> <reason>" (docs/operators.md).',
  );
  command.action(
    host.action(async (flags: { migrations: string; squawk?: string; json?: boolean }): Promise<ExitCode> => {
      const report = await lintMigrations(flags.migrations, flags.squawk === undefined ? {} : { binary: flags.squawk });
      if (flags.json) printJson(host.io, { ok: report.findings.length === 0, ...report });
      else println(host.io, formatLintReport(report));
      return report.findings.length === 0 ? EXIT.ok : EXIT.lintFindings;
    }),
  );
}
