import { readFileSync } from 'node:fs';
import { InvalidArgumentError, Option, type Command } from 'commander';
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
  readonly schema?: string;
  readonly seed?: string;
  readonly release?: string;
  readonly stopAfter?: 'expand' | 'migrate';
  readonly settings?: unknown;
  readonly json?: boolean;
  readonly verbose?: boolean;
}

export function registerLocal(program: Command, host: CommandHost): void {
  program
    .command('local')
    .description(
      'run the upgrade state machine on this machine against PostgreSQL (an embedded one by default): the demo release with the demo application writing, or your own migrations on your own schema (--schema)',
    )
    .option('--database-url <url>', 'use this PostgreSQL instead of a throw-away embedded one')
    .option('--migrations <dir>', 'migrations directory (default: the demo release in demo/migrations)')
    .option(
      '--drain-sessions <pattern>',
      "LIKE pattern over the application_name of the old release's sessions; contract waits until none is connected (required with your own --migrations)",
    )
    .option('--rows <n>', 'rows of the demo table when it is seeded (default 100000)', positiveNumber('--rows'))
    .option('--schema <file>', 'a SQL dump (e.g. pg_dump --schema-only --no-owner) loaded into the throw-away PostgreSQL before the run, for your own --migrations (not with --database-url)')
    .option('--seed <file>', 'SQL run after --schema, e.g. rows to migrate (pg_dump --data-only --inserts)')
    .option('--release <name>', 'the release to upgrade to (default: the newest of the migrations)')
    .addOption(new Option('--stop-after <phase>', 'end the run successfully after this phase').choices(['expand', 'migrate']))
    .option('--settings <file|json>', 'batch settings overrides, as JSON or a JSON file, e.g. \'{"batchSize":500}\'', parseSettings)
    .option('--json', 'print one JSON document instead of the human report')
    .option('--verbose', 'show the handlers\' structured logs')
    .addHelpText(
      'after',
      '\nExit codes: 0 the local execution succeeded, 1 it failed, 2 bad options (e.g. --drain-sessions missing, bad --settings, a --schema that does not load), 9 invalid migrations, 12 lock-safety findings (as emc lint; both checked before any database starts).',
    )
    .action(
      host.action(async (flags: LocalFlags): Promise<ExitCode> => {
        const result = await runLocal(host.context, {
          databaseUrl: flags.databaseUrl,
          migrationsDirectory: flags.migrations,
          drainSessions: flags.drainSessions,
          rows: flags.rows,
          schemaFile: flags.schema,
          seedFile: flags.seed,
          release: flags.release,
          stopAfter: flags.stopAfter,
          settings: flags.settings,
          json: flags.json,
          verbose: flags.verbose,
          out: (line) => println(host.io, line),
        });
        return result.succeeded ? EXIT.ok : EXIT.failed;
      }),
    );
}

/** `--settings`: JSON text, or the path of a JSON file (anything not starting with `{`). Validated by the engine later. */
function parseSettings(value: string): unknown {
  const inline = value.trimStart().startsWith('{');
  let text = value;
  if (!inline) {
    try {
      text = readFileSync(value, 'utf8');
    } catch (error) {
      throw new InvalidArgumentError(`neither JSON nor a readable file (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); e.g. '{"batchSize":500}' or settings.json.`);
    }
  }
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new InvalidArgumentError(`${inline ? '' : `${value}: `}not JSON (${(error as Error).message}); e.g. '{"batchSize":500}'.`);
  }
}
