import { InvalidArgumentError, type Command } from 'commander';
import {
  contract,
  contractGates,
  engineBounds,
  expand,
  inspect,
  leased,
  migrateToEnd,
  PhaseGateError,
  pollDrainGate,
  reading,
  releaseLease,
  type DrainGateState,
  type EngineEvent,
  type MigrateResult,
  type RunContext,
  type SchemaPhaseResult,
} from '../../lambdas/core/index.ts';
import {
  finishUpgrade,
  migrateStepResultSchema,
  startUpgrade,
  type RunSummary,
  type UpgradePlan,
} from '../../lambdas/core/workflow/index.ts';
import { UsageError } from './cli-errors.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import { positiveNumber, type CommandHost } from './host.ts';
import { operatorName } from './operator.ts';
import { formatCount, formatDuration, printJson, println, progressBar } from './output.ts';
import { addDatabaseCommandOptions, withDatabase, type DatabaseCommandFlags, type DatabaseDependencies } from './version.ts';

/**
 * `emc expand`, `emc migrate` and `emc contract`: one phase run by hand, with the state machine's engine and its
 * rules. Each run plans and takes the lease as the start task does (`startUpgrade`: input, drift and order checks
 * first, nothing written before them), runs the engine's phase (its gates, its history rows under the run's id),
 * and releases the lease as the finish task does (`finishUpgrade`), or, when it fails, as "Record failure" does.
 * The lease is held only while the command runs: migrate's progress lives in the database, so the next
 * `emc migrate` resumes where this one stopped, whoever runs it.
 */

/** The prefix of a hand run's id: the lease owner and history run id of `emc expand|migrate|contract`. */
export const HAND_RUN_PREFIX = 'emc-cli:';

/** `emc-cli:migrate:alice@host:4242:2025-06-01T12:00:00.000Z`: never an ARN, so `emc unlock` tells it from an execution. */
export function handRunId(phase: string, env: Readonly<Record<string, string | undefined>>, at: Date = new Date()): string {
  return `${HAND_RUN_PREFIX}${phase}:${operatorName(env)}:${process.pid}:${at.toISOString()}`;
}

/** The longest engine migrate call of `emc migrate`: one progress report after each. */
const PROGRESS_INTERVAL_MS = 5000;
/** Between two polls of the drain source while `--drain-timeout` lasts. */
const DRAIN_POLL_MS = 5000;

export interface HandRunOptions {
  readonly runId: string;
  readonly release?: string;
  /** Settings overrides, validated like an execution input's `settings`. */
  readonly settings?: unknown;
  readonly onEvent?: (event: EngineEvent) => void;
}

export interface HandRun<T> {
  readonly runId: string;
  readonly result: T;
  readonly summary: RunSummary;
}

/** Plan and lease, the phase's work, then the lease released (on success and on failure). */
async function handRun<T>(
  deps: DatabaseDependencies,
  stopAfter: 'expand' | 'migrate' | undefined,
  options: HandRunOptions & { readonly restartSteps?: readonly string[] },
  work: (ctx: RunContext, plan: UpgradePlan) => Promise<T>,
): Promise<HandRun<T>> {
  const plan = await startUpgrade(deps.client, deps.catalog, {
    runId: options.runId,
    input: {
      ...(options.release === undefined ? {} : { targetRelease: options.release }),
      ...(stopAfter === undefined ? {} : { stopAfter }),
      ...(options.settings === undefined ? {} : { settings: options.settings }),
      ...(options.restartSteps?.length ? { restartSteps: [...options.restartSteps] } : {}),
    },
  });
  const ctx: RunContext = { client: deps.client, runId: plan.runId, settings: plan.settings, onEvent: options.onEvent };
  let result: T;
  try {
    result = await work(ctx, plan);
  } catch (error) {
    // As "Record failure" does: the step's failure is in the history already; the next run must not wait for the lease.
    await releaseLease(deps.client, plan.runId, engineBounds(plan.settings)).catch(() => false);
    throw error;
  }
  return { runId: plan.runId, result, summary: await finishUpgrade(deps.client, plan) };
}

/** Applies every pending expand step up to the release. */
export function runExpand(deps: DatabaseDependencies, options: HandRunOptions): Promise<HandRun<SchemaPhaseResult>> {
  return handRun(deps, 'expand', options, (ctx, plan) => expand(ctx, deps.catalog, plan.target));
}

export interface MigrateRun {
  readonly finished: boolean;
  readonly calls: readonly MigrateResult[];
}

/**
 * Runs migrate calls until every migrate step up to the release is finished, or `maxSeconds` has passed (each
 * call runs at least one batch). Each call is the engine's migrate with a budget of at most 5 s, and reports its
 * progress through `onProgress`.
 */
export function runMigrate(
  deps: DatabaseDependencies,
  options: HandRunOptions & {
    readonly maxSeconds?: number;
    readonly restartSteps?: readonly string[];
    readonly onProgress?: (result: MigrateResult) => void;
  },
): Promise<HandRun<MigrateRun>> {
  return handRun(deps, 'migrate', options, async (ctx, plan) => {
    const calls = await migrateToEnd({ ...ctx, settings: { ...ctx.settings, migrateBudgetMs: PROGRESS_INTERVAL_MS } }, deps.catalog, {
      target: plan.target,
      restartSteps: plan.restartSteps ?? [],
      // The engine's own clock: its budget is measured with Date.now().
      ...(options.maxSeconds === undefined ? {} : { deadline: Date.now() + options.maxSeconds * 1000 }),
      maxCalls: Infinity,
      afterCall: options.onProgress,
    });
    return { finished: calls.at(-1)!.finished, calls };
  });
}

export interface ContractRun extends SchemaPhaseResult {
  readonly drain: DrainGateState;
}

/**
 * Applies every pending contract step once its other gates are open (checked first: expand done, migrations finished
 * with nothing pending) and the drain gate confirms that no session of the old release is connected (`drainSessions`, a LIKE pattern over application_name, and optionally its role's unnamed sessions),
 * polling for up to `drainTimeoutSeconds` (0: one check). Not drained: `DrainTimeoutError`, nothing dropped.
 */
export function runContract(
  deps: DatabaseDependencies & { readonly sleep: (ms: number) => Promise<void>; readonly now: () => number },
  options: HandRunOptions & { readonly drainSessions: string; readonly drainRole?: string; readonly drainTimeoutSeconds: number },
): Promise<HandRun<ContractRun>> {
  return handRun(deps, undefined, options, async (ctx, plan) => {
    // Contract's other gates first, as contract will check them: no use waiting for a drain when it would refuse anyway.
    const { inspection, closed } = await reading(ctx, 'reading the upgrade state before the drain', async (tx) => {
      const inspection = await inspect(tx, deps.catalog, plan.target);
      return { inspection, closed: await contractGates(tx, deps.catalog, inspection, true) };
    });
    if (closed.length > 0 && inspection.pending.contract.length > 0) throw new PhaseGateError('contract', closed);
    let previous: DrainGateState | undefined;
    for (;;) {
      // The gate's wait must not let the lease expire under this run (as the drain task does).
      await leased(ctx, 'renewing the lease while the old release drains', async () => {});
      const state: DrainGateState = await pollDrainGate(
        { sql: deps.client },
        {
          source: {
            kind: 'database-sessions',
            applicationNamePattern: options.drainSessions,
            ...(options.drainRole === undefined ? {} : { applicationRole: options.drainRole }),
          },
          timeoutSeconds: options.drainTimeoutSeconds,
          requestedTaskDefinitions: {},
          previous,
          now: new Date(deps.now()),
        },
      );
      if (state.drained) {
        const result = await contract(ctx, deps.catalog, plan.target, { drainConfirmed: true });
        return { ...result, drain: state };
      }
      previous = state;
      await deps.sleep(DRAIN_POLL_MS);
    }
  });
}

interface PhaseFlags extends DatabaseCommandFlags {
  readonly settings?: unknown;
}

function addPhaseOptions(command: Command): Command {
  addDatabaseCommandOptions(command);
  return command.option('--settings <json>', 'settings overrides, as an execution input\'s "settings", e.g. \'{"batchSize":500}\'', parseJson);
}

function parseJson(value: string): unknown {
  try {
    return JSON.parse(value);
  } catch (error) {
    throw new InvalidArgumentError(`not JSON (${(error as Error).message}); e.g. '{"batchSize":500}'.`);
  }
}

function printEvent(host: CommandHost, event: EngineEvent): void {
  if (event.type === 'step-started') println(host.io, `${event.stepId}: running`);
  else if (event.type === 'step-succeeded') println(host.io, `${event.stepId}: done in ${formatDuration(event.durationMs)}, version ${event.version}`);
  else if (event.type === 'step-failed') println(host.io, `${event.stepId}: failed`);
  else if (event.type === 'migrate-pass-restarted') println(host.io, `${event.stepId}: ${formatCount(event.pending)} rows still pending, pass ${event.pass}`);
  else if (event.type === 'migrate-step-restarted') println(host.io, `${event.stepId}: restarted from its first key`);
}

function printSummary(host: CommandHost, run: HandRun<unknown>): void {
  println(host.io, `Version ${run.summary.versionAfter} (was ${run.summary.versionBefore}); run ${run.runId}, lease released.`);
}

const PHASE_EXIT_HELP = '2 bad options or input, 8 database unreachable, 9 invalid migrations, 11 database does not match the migrations';

export function registerPhases(program: Command, host: CommandHost): void {
  const common = (flags: PhaseFlags, phase: string): HandRunOptions => ({
    runId: handRunId(phase, host.context.env),
    release: flags.release,
    settings: flags.settings,
    onEvent: flags.json ? undefined : (event) => printEvent(host, event),
  });

  const expandCommand = program
    .command('expand')
    .description('apply the pending expand steps by hand (the lease, history and checks of an execution)');
  addPhaseOptions(expandCommand);
  expandCommand.addHelpText('after', `\nExit codes: 0 expand done, 1 a step failed or the lease is held, ${PHASE_EXIT_HELP}.`);
  expandCommand.action(
    host.action(async (flags: PhaseFlags): Promise<ExitCode> => {
      const run = await withDatabase(host, flags, (deps) => runExpand(deps, common(flags, 'expand')));
      if (flags.json) printJson(host.io, run);
      else printSummary(host, run);
      return EXIT.ok;
    }),
  );

  const migrateCommand = program
    .command('migrate')
    .description('run the pending migrate steps by hand, resumable, with progress (expand must be done)')
    .option('--max-seconds <n>', 'stop after about this long, between two batches (exit 4); the next emc migrate resumes', positiveNumber('--max-seconds'))
    .option(
      '--restart-step <step>',
      'a migrate step whose file changed after some of its batches ran: run it again from its first key (repeatable)',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), value],
    );
  addPhaseOptions(migrateCommand);
  migrateCommand.addHelpText(
    'after',
    `\nExit codes: 0 every migrate step finished, 4 --max-seconds passed with rows left (run it again), 1 a step failed, expand is\npending or the lease is held, ${PHASE_EXIT_HELP}.`,
  );
  migrateCommand.action(
    host.action(async (flags: PhaseFlags & { maxSeconds?: number; restartStep?: string[] }): Promise<ExitCode> => {
      const run = await withDatabase(host, flags, (deps) =>
        runMigrate(deps, {
          ...common(flags, 'migrate'),
          maxSeconds: flags.maxSeconds,
          restartSteps: flags.restartStep,
          onProgress: flags.json ? undefined : (result) => printMigrateProgress(host, result),
        }),
      );
      // Each step as the task contract has it: cursors are key values (row data), kept out of the output as out of the history.
      const calls = run.result.calls.map((call) => ({ ...call, steps: call.steps.map((step) => migrateStepResultSchema.parse(step)) }));
      if (flags.json) printJson(host.io, { ...run, result: { ...run.result, calls } });
      else {
        printSummary(host, run);
        if (!run.result.finished) println(host.io, 'Stopped by --max-seconds with rows left: run emc migrate again to resume.');
      }
      return run.result.finished ? EXIT.ok : EXIT.migratePending;
    }),
  );

  const contractCommand = program
    .command('contract')
    .description('apply the pending contract steps by hand, once the drain source given confirms the old release is gone')
    .option('--drain-sessions <pattern>', "LIKE pattern over the application_name of the old release's sessions (required)")
    .option('--drain-role <role>', "the application's database role: its sessions without application_name count as the old release's")
    .option('--drain-timeout <seconds>', 'wait this long for the old release to drain (default 0: check once)', nonNegativeNumber, 0);
  addPhaseOptions(contractCommand);
  contractCommand.addHelpText(
    'after',
    `\nExit codes: 0 contract done, 1 not drained (DrainTimeoutError), a gate closed (PhaseGateError), a step failed or the lease is\nheld, ${PHASE_EXIT_HELP} (--drain-sessions missing).`,
  );
  contractCommand.action(
    host.action(async (flags: PhaseFlags & { drainSessions?: string; drainRole?: string; drainTimeout: number }): Promise<ExitCode> => {
      // Contract drops what the old release uses: without a drain source nothing can confirm it is gone.
      if (flags.drainSessions === undefined) {
        throw new UsageError(
          'emc contract needs a drain source: --drain-sessions <pattern> (the application_name LIKE pattern of the old release\'s sessions).',
          'Give --drain-sessions (and --drain-role for its unnamed sessions); contract runs only once no such session is connected.',
        );
      }
      const drainSessions = flags.drainSessions;
      const run = await withDatabase(host, flags, (deps) =>
        runContract(
          { ...deps, sleep: host.context.sleep, now: host.context.now },
          { ...common(flags, 'contract'), drainSessions, drainRole: flags.drainRole, drainTimeoutSeconds: flags.drainTimeout },
        ),
      );
      if (flags.json) printJson(host.io, run);
      else {
        println(host.io, `Drain: ${run.result.drain.summary}`);
        printSummary(host, run);
      }
      return EXIT.ok;
    }),
  );
}

function printMigrateProgress(host: CommandHost, result: MigrateResult): void {
  for (const step of result.steps) {
    const total = step.remaining === null ? null : step.rowsDone + step.remaining;
    const left = step.finished ? 'finished' : step.remaining === null ? 'remaining unknown' : `${formatCount(step.remaining)} remaining`;
    println(host.io, `${step.stepId}: ${formatCount(step.rowsDone)} rows done, ${left}${total ? `  ${progressBar(step.rowsDone, total)}` : ''}`);
  }
}

function nonNegativeNumber(value: string): number {
  const n = Number(value);
  if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError('--drain-timeout must be a number of seconds, 0 or more.');
  return n;
}

