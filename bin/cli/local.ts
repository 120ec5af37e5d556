import type { Command } from 'commander';
import type { LocalDemoOptions } from '../local/local-demo.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import { positiveNumber, type CommandHost } from './host.ts';
import { println } from './output.ts';

/** Runs the whole workflow locally (bin/local/local-demo.ts) and tells whether it succeeded. */
export async function runLocal(
  deps: { readonly runLocalDemo: (options: LocalDemoOptions) => Promise<{ readonly succeeded: boolean }> },
  options: LocalDemoOptions,
): Promise<{ readonly succeeded: boolean }> {
  return deps.runLocalDemo(options);
}

interface LocalFlags {
  readonly databaseUrl?: string;
  readonly migrations?: string;
  readonly drainSessions?: string;
  readonly rows?: number;
  readonly json?: boolean;
  readonly verbose?: boolean;
}

export function registerLocal(program: Command, host: CommandHost): void {
  program
    .command('local')
    .description('run the upgrade state machine on this machine against PostgreSQL (an embedded one by default), with the demo application writing (demo migrations only)')
    .option('--database-url <url>', 'use this PostgreSQL instead of a throw-away embedded one')
    .option('--migrations <dir>', 'migrations directory (default: the demo release in demo/migrations)')
    .option(
      '--drain-sessions <pattern>',
      "LIKE pattern over the application_name of the old release's sessions; contract waits until none is connected (required with your own --migrations)",
    )
    .option('--rows <n>', 'rows of the demo table when it is seeded (default 100000)', positiveNumber('--rows'))
    .option('--json', 'print one JSON document instead of the human report')
    .option('--verbose', 'show the handlers\' structured logs')
    .addHelpText('after', '\nExit codes: 0 the local execution succeeded, 1 it failed, 2 bad options (e.g. --drain-sessions missing).')
    .action(
      host.action(async (flags: LocalFlags): Promise<ExitCode> => {
        const result = await runLocal(host.context, {
          databaseUrl: flags.databaseUrl,
          migrationsDirectory: flags.migrations,
          drainSessions: flags.drainSessions,
          rows: flags.rows,
          json: flags.json,
          verbose: flags.verbose,
          out: (line) => println(host.io, line),
        });
        return result.succeeded ? EXIT.ok : EXIT.failed;
      }),
    );
}
