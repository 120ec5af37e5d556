import { existsSync } from 'node:fs';
import { SFNClient } from '@aws-sdk/client-sfn';
import { InvalidArgumentError, type Command } from 'commander';
import { loadCatalog, type Catalog, type SqlClient } from '../../lambdas/core/index.ts';
import type { LocalDemoOptions } from '../local/local-demo.ts';
import { executionArnOf, isExecutionArn, regionOfArn, resolveStateMachineArn } from './aws.ts';
import { describeFailure } from './cli-errors.ts';
import { defaultMigrationsDirectory, openDatabase, type DatabaseTarget } from './database.ts';
import type { ExitCode } from './exit-codes.ts';
import { eprintln, printJson, type Io } from './output.ts';

/**
 * Everything the program touches outside itself. `bin/emc.ts` passes the real one; tests pass their own
 * (in-memory output, a mocked Step Functions client, the test database), so the whole program runs in-process.
 */
export interface CliContext {
  readonly io: Io;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** A Step Functions client for a region (undefined: the SDK's default chain, e.g. AWS_REGION or the profile). */
  readonly sfnClient: (region: string | undefined) => SFNClient;
  readonly openDatabase: (target: DatabaseTarget) => SqlClient;
  readonly sleep: (ms: number) => Promise<void>;
  readonly now: () => number;
  readonly runLocalDemo: (options: LocalDemoOptions) => Promise<{ readonly succeeded: boolean }>;
}

/** The real context, plus `close()` to release the SDK clients it made. */
export function processContext(): CliContext & { close(): void } {
  const made: SFNClient[] = [];
  return {
    io: {
      stdout: (text) => void process.stdout.write(text),
      stderr: (text) => void process.stderr.write(text),
      isTTY: process.stdout.isTTY === true,
    },
    env: process.env,
    sfnClient: (region) => {
      const client = new SFNClient(region ? { region } : {});
      made.push(client);
      return client;
    },
    openDatabase,
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    now: () => Date.now(),
    // Loaded on demand: the local demo pulls in the CDK app, aws-local-stepfunctions and embedded PostgreSQL.
    runLocalDemo: async (options) => (await import('../local/local-demo.ts')).runLocalDemo(options),
    close: () => {
      for (const client of made.splice(0)) client.destroy();
    },
  };
}

/** What a command's action gets: the context, cached clients, and the helpers every command shares. */
export class CommandHost {
  private readonly clients = new Map<string, SFNClient>();
  exitCode: ExitCode = 0;

  constructor(readonly context: CliContext) {}

  get io(): Io {
    return this.context.io;
  }

  /** A Step Functions client in `--region`, else the region of the ARN at hand, else AWS_REGION / the profile. */
  sfn(flags: AwsFlags, arn?: string): SFNClient {
    const region = flags.region ?? (arn ? regionOfArn(arn) : undefined) ?? this.context.env['AWS_REGION'] ?? this.context.env['AWS_DEFAULT_REGION'];
    const key = region ?? '';
    let client = this.clients.get(key);
    if (!client) {
      client = this.context.sfnClient(region);
      this.clients.set(key, client);
    }
    return client;
  }

  /** `--state-machine-arn`, `EMC_STATE_MACHINE_ARN`, or the one found by name (see resolveStateMachineArn). */
  async stateMachineArn(flags: AwsFlags): Promise<string> {
    return resolveStateMachineArn(this.sfn(flags), flags, this.context.env);
  }

  /** An execution ARN as given, or a name resolved against the state machine. */
  async executionArn(reference: string, flags: AwsFlags): Promise<string> {
    if (isExecutionArn(reference)) return reference;
    return executionArnOf(await this.stateMachineArn(flags), reference);
  }

  /**
   * Wraps a command's work: the work returns its exit code; a thrown error is printed (and, with `--json`, also
   * written as a JSON document on stdout) and mapped to its documented exit code.
   */
  action<A extends unknown[]>(work: (...args: A) => Promise<ExitCode>): (...args: unknown[]) => Promise<void> {
    return async (...args) => {
      const command = args[args.length - 1] as Command;
      const json = command.opts<{ json?: boolean }>().json === true;
      try {
        this.exitCode = await work(...(args as A));
      } catch (error) {
        const failure = describeFailure(error);
        eprintln(this.io, `emc: ${failure.message}`);
        if (failure.nextAction) eprintln(this.io, `Next: ${failure.nextAction}`);
        if (json) printJson(this.io, { ok: false, ...failure });
        this.exitCode = failure.exitCode;
      }
    };
  }
}

export interface AwsFlags {
  readonly stateMachineArn?: string;
  readonly stack?: string;
  readonly region?: string;
}

export function addAwsOptions(command: Command): Command {
  return command
    .option('--state-machine-arn <arn>', 'the upgrade state machine (env EMC_STATE_MACHINE_ARN; default: found by --stack)')
    .option('--stack <name>', 'find the state machine by the stack name in its name (env EMC_STACK)', undefined)
    .option('--region <region>', 'AWS region (default: the ARN\'s region, else AWS_REGION or the profile)');
}

export function addJsonOption(command: Command): Command {
  return command.option('--json', 'print one JSON document instead of text');
}

export function addMigrationsOption(
  command: Command,
  description = 'the migrations directory (by default cdk.json\'s "emc:migrationsDirectory", else demo/migrations)',
): Command {
  return command.option('--migrations <dir>', description, defaultMigrationsDirectory());
}

/**
 * The catalog of `--migrations`. When the option was left at its default and that directory does not exist,
 * returns undefined (for commands where the catalog is optional); an explicit directory must load.
 */
export async function optionalCatalog(command: Command, directory: string): Promise<Catalog | undefined> {
  if (command.getOptionValueSource('migrations') === 'default' && !existsSync(directory)) return undefined;
  return loadCatalog(directory);
}

/** Parses `--timeout 30` (minutes) and `--poll-interval 5` (seconds) style numbers. */
export function positiveNumber(label: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${label} must be a positive number.`);
    return n;
  };
}
