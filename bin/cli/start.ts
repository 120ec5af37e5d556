import { createHash } from 'node:crypto';
import { DescribeExecutionCommand, StartExecutionCommand, type DescribeExecutionOutput, type SFNClient } from '@aws-sdk/client-sfn';
import { InvalidArgumentError, Option, type Command } from 'commander';
import { resolveTarget, type Catalog } from '../../lambdas/core/index.ts';
import { parseExecutionInput, type ExecutionInput } from '../../lambdas/core/workflow/index.ts';
import { describeExecution, executionArnOf, sfnCall } from './aws.ts';
import { errorName, UsageError } from './cli-errors.ts';
import { isTerminal, type ExecutionStatus } from './execution-view.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import {
  addAwsOptions,
  addJsonOption,
  addMigrationsOption,
  optionalCatalog,
  positiveNumber,
  type AwsFlags,
  type CommandHost,
} from './host.ts';
import { printJson, println } from './output.ts';
import { progressReporter } from './progress.ts';
import { DEFAULT_POLL_INTERVAL_SECONDS, reportWait, waitForExecution } from './wait.ts';

/** Step Functions' limit on execution names. */
export const MAX_EXECUTION_NAME = 80;
/** How many executions of the same input `start` may create after earlier ones failed (`-r2` ... `-r20`). */
export const MAX_ATTEMPTS = 20;

export interface StartOptions {
  readonly stateMachineArn: string;
  /** The release to upgrade to. @default the newest release of `catalog` */
  readonly release?: string;
  readonly stopAfter?: 'expand' | 'migrate';
  /** Settings overrides, as given (validated with the execution input). */
  readonly settings?: unknown;
  readonly newTaskDefinitions?: Readonly<Record<string, string>>;
  /** The old release's session pattern for the database-sessions drain gate (input `drain.sessions`). */
  readonly drainSessions?: string;
  /** Partly-run migrate steps whose file changed, to run again from their first key (`restartSteps`). */
  readonly restartSteps?: readonly string[];
  /** An explicit execution name instead of the one derived from the input. */
  readonly name?: string;
  /** The migrations the state machine ships: resolves the default release and rejects unknown ones early. */
  readonly catalog?: Catalog;
}

export interface StartResult {
  readonly executionArn: string;
  readonly name: string;
  readonly input: ExecutionInput;
  /** True when an execution of this name and input already ran or runs, and `start` attached to it instead. */
  readonly attached: boolean;
  readonly status: ExecutionStatus;
  readonly startDate: string | undefined;
  /** Earlier executions of the same input that ended without success; this execution is the next attempt. */
  readonly previousAttempts: readonly { readonly name: string; readonly status: ExecutionStatus }[];
}

/**
 * The execution input: the release is always written in (the newest of the catalog when not given), so the
 * execution name, derived from the input, names the release it upgrades to. Invalid input fails here with every
 * problem listed, before anything is started.
 */
export function buildExecutionInput(options: Omit<StartOptions, 'stateMachineArn' | 'name'>): ExecutionInput {
  let release = options.release;
  if (options.catalog) release = resolveTarget(options.catalog, release);
  if (release === undefined) {
    throw new UsageError(
      'emc start needs the release to upgrade to.',
      'Pass --release <release>, or --migrations <dir> to take the newest release of that directory.',
    );
  }
  return parseExecutionInput({
    targetRelease: release,
    ...(options.stopAfter ? { stopAfter: options.stopAfter } : {}),
    ...(options.settings !== undefined ? { settings: options.settings } : {}),
    ...(options.newTaskDefinitions && Object.keys(options.newTaskDefinitions).length > 0
      ? { newTaskDefinitions: options.newTaskDefinitions }
      : {}),
    ...(options.drainSessions !== undefined ? { drain: { sessions: options.drainSessions } } : {}),
    ...(options.restartSteps && options.restartSteps.length > 0 ? { restartSteps: [...options.restartSteps] } : {}),
  });
}

/**
 * `emc-<release>-<expand|migrate|full>-<8 hex of sha256(input)>`, then `-r<attempt>` from the second attempt on:
 * the same input always gives the same name, so a pipeline that runs again finds the execution it started. At
 * most 80 characters of letters, digits, `.`, `-` and `_` (the release is shortened if needed).
 */
export function executionName(input: ExecutionInput, attempt = 1): string {
  const hash = createHash('sha256').update(canonicalJson(input)).digest('hex').slice(0, 8);
  const tail = `-${input.stopAfter ?? 'full'}-${hash}${attempt > 1 ? `-r${attempt}` : ''}`;
  const release = (input.targetRelease ?? 'latest').replace(/[^A-Za-z0-9._-]/g, '-');
  return `emc-${release.slice(0, MAX_EXECUTION_NAME - 'emc-'.length - tail.length)}${tail}`;
}

/** JSON with object keys sorted at every level: equal inputs give equal text. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/**
 * Starts an upgrade execution, idempotently. The name is derived from the input (or given): if an execution of
 * that name already runs or succeeded, `start` attaches to it instead of starting a second upgrade (Step
 * Functions answers `ExecutionAlreadyExists` for a name in use). If it ended without success, the next attempt
 * (`-r2`, `-r3`, ...) is started, so a pipeline re-run after a fix upgrades again. An explicit `name` is never
 * varied: an ended execution of that name is an error.
 */
export async function startExecution(deps: { readonly sfn: SFNClient }, options: StartOptions): Promise<StartResult> {
  const input = buildExecutionInput(options);
  const inputJson = JSON.stringify(input);
  const previousAttempts: { name: string; status: ExecutionStatus }[] = [];
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    const name = options.name ?? executionName(input, attempt);
    const executionArn = executionArnOf(options.stateMachineArn, name);
    let existing = await describeIfExists(deps.sfn, executionArn);
    if (existing === undefined) {
      try {
        const started = await sfnCall(
          () => deps.sfn.send(new StartExecutionCommand({ stateMachineArn: options.stateMachineArn, name, input: inputJson })),
          { kind: 'state machine', arn: options.stateMachineArn },
        );
        return {
          executionArn: started.executionArn ?? executionArn,
          name,
          input,
          attached: false,
          status: 'RUNNING',
          startDate: started.startDate?.toISOString(),
          previousAttempts,
        };
      } catch (error) {
        // Another run of the pipeline started it between our look and our start (or it ended meanwhile).
        if (errorName(error) !== 'ExecutionAlreadyExists') throw error;
        existing = await describeExecution(deps.sfn, executionArn);
      }
    }
    if (existing.input !== undefined && canonicalJson(JSON.parse(existing.input)) !== canonicalJson(input)) {
      throw new UsageError(
        `An execution named ${name} already exists with a different input: ${existing.input}.`,
        'Choose another --name, or start it with the same options.',
      );
    }
    const status = (existing.status ?? 'RUNNING') as ExecutionStatus;
    if (!isTerminal(status) || status === 'SUCCEEDED') {
      return {
        executionArn,
        name,
        input,
        attached: true,
        status,
        startDate: existing.startDate?.toISOString(),
        previousAttempts,
      };
    }
    if (options.name !== undefined) {
      throw new UsageError(
        `Execution ${name} already ended ${status}; an execution name cannot be used twice.`,
        `See why with "emc why ${executionArn}"; start again without --name (or with a new one).`,
      );
    }
    previousAttempts.push({ name, status });
  }
  throw new UsageError(
    `The same upgrade input failed ${MAX_ATTEMPTS} times (${previousAttempts.map((p) => p.name).join(', ')}).`,
    'Find out why with "emc why <execution>" and fix it, or start with an explicit --name.',
  );
}

async function describeIfExists(sfn: SFNClient, executionArn: string): Promise<DescribeExecutionOutput | undefined> {
  return sfnCall(async () => {
    try {
      return await sfn.send(new DescribeExecutionCommand({ executionArn }));
    } catch (error) {
      if (errorName(error) === 'ExecutionDoesNotExist') return undefined;
      throw error;
    }
  }, { kind: 'execution', arn: executionArn });
}

interface StartFlags extends AwsFlags {
  readonly release?: string;
  readonly stopAfter?: 'expand' | 'migrate';
  readonly settings?: unknown;
  readonly newTaskDefinition?: Record<string, string>;
  readonly drainSessions?: string;
  readonly restartStep?: string[];
  readonly name?: string;
  readonly migrations: string;
  readonly wait?: boolean;
  readonly until?: 'drain-wait';
  readonly timeout?: number;
  readonly pollInterval: number;
  readonly json?: boolean;
}

export function registerStart(program: Command, host: CommandHost): void {
  const command = program
    .command('start')
    .description('start an upgrade execution (idempotent: a second start of the same input attaches to the first)')
    .option('--release <release>', 'release to upgrade to (default: the newest release in --migrations)')
    .addOption(new Option('--stop-after <phase>', 'end the execution successfully after this phase').choices(['expand', 'migrate']))
    .option('--settings <json>', 'batch settings overrides, e.g. \'{"batchSize":500}\'', parseSettings)
    .option(
      '--new-task-definition <service=taskdef>',
      'the new release\'s ECS task definition for a service, for the drain gate (repeatable)',
      collectTaskDefinition,
    )
    .option(
      '--drain-sessions <pattern>',
      "the old release's application_name LIKE pattern for a database-sessions drain gate, instead of the deployed one",
    )
    .option(
      '--restart-step <step>',
      'a migrate step whose file changed after some of its batches ran: run it again from its first key (repeatable)',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    )
    .option('--name <name>', 'execution name (default: emc-<release>-<phase|full>-<hash of the input>)');
  addMigrationsOption(
    command,
    'migrations directory, to take the default release from and check --release against (by default cdk.json\'s "emc:migrationsDirectory", skipped when absent)',
  );
  command
    .option('--wait', 'wait for the execution to end, showing progress')
    .addOption(
      new Option('--until <point>', 'with --wait (implied): return once the execution waits for the old release to drain').choices([
        'drain-wait',
      ]),
    )
    .option('--timeout <minutes>', 'stop waiting after this long (exit 10)', positiveNumber('--timeout'))
    .option('--poll-interval <seconds>', 'seconds between two polls', positiveNumber('--poll-interval'), DEFAULT_POLL_INTERVAL_SECONDS);
  addAwsOptions(command);
  addJsonOption(command);
  command.addHelpText(
    'after',
    [
      '',
      'The execution is named after its input, so running the same command again (a re-run pipeline) attaches to the',
      'execution already running or succeeded instead of starting a second upgrade; after a failed one it starts the',
      'next attempt (-r2, -r3, ...).',
      '',
      'Exit codes: 0 started (with --wait: SUCCEEDED, or the drain wait reached with --until), 1 FAILED/TIMED_OUT/ABORTED,',
      '2 invalid input (unknown release, bad --settings), 6 state machine not found, 7 AWS credentials, 9 invalid',
      'migrations directory, 10 --timeout elapsed.',
    ].join('\n'),
  );
  command.action(
    host.action(async (flags: StartFlags, cmd: Command): Promise<ExitCode> => {
      const catalog = await optionalCatalog(cmd, flags.migrations);
      const stateMachineArn = await host.stateMachineArn(flags);
      const sfn = host.sfn(flags, stateMachineArn);
      const started = await startExecution(
        { sfn },
        {
          stateMachineArn,
          release: flags.release,
          stopAfter: flags.stopAfter,
          settings: flags.settings,
          newTaskDefinitions: flags.newTaskDefinition,
          drainSessions: flags.drainSessions,
          restartSteps: flags.restartStep,
          name: flags.name,
          catalog,
        },
      );
      const json = flags.json === true;
      if (!json) {
        for (const previous of started.previousAttempts) println(host.io, `Execution ${previous.name} ended ${previous.status}; starting the next attempt.`);
        println(
          host.io,
          started.attached
            ? `Attached to execution ${started.name} (${started.status}), already started with the same input.`
            : `Started execution ${started.name}.`,
        );
        println(host.io, started.executionArn);
      }
      if (!flags.wait && !flags.until) {
        if (json) printJson(host.io, started);
        return EXIT.ok;
      }
      const progress = json ? undefined : progressReporter(host.io);
      const result = await waitForExecution(
        { sfn, sleep: host.context.sleep, now: host.context.now },
        {
          executionArn: started.executionArn,
          until: flags.until ?? 'end',
          pollIntervalMs: flags.pollInterval * 1000,
          timeoutMs: flags.timeout === undefined ? undefined : flags.timeout * 60_000,
          onUpdate: progress ? (view, fresh) => progress.update(view, fresh) : undefined,
        },
      );
      progress?.done();
      return reportWait(host.io, result, json, { start: started }, host.context.now());
    }),
  );
}

function parseSettings(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`not JSON (${(error as Error).message}); e.g. '{"batchSize":500}'.`);
  }
}

function collectTaskDefinition(value: string, previous: Record<string, string> | undefined): Record<string, string> {
  const at = value.indexOf('=');
  if (at <= 0 || at === value.length - 1) throw new InvalidArgumentError('expected <service>=<task definition ARN or family:revision>.');
  return { ...previous, [value.slice(0, at)]: value.slice(at + 1) };
}

