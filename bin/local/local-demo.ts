import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import {
  checkLockSafety,
  formatVersion,
  InputError,
  loadCatalog,
  PgSqlClient,
  readHistory,
  readState,
  resolveSettings,
  resolveTarget,
  sessionPatternProblem,
  settingsProblems,
  type Catalog,
  type CompositeVersion,
  type HistoryEntry,
  type SettingsOverrides,
} from '../../lambdas/core/index.ts';
import {
  CONTROL_STATE_NAMES,
  parseExecutionInput,
  parseTaskResult,
  RESULT_KEYS,
  STATE_NAMES,
  type ExecutionInput,
} from '../../lambdas/core/workflow/index.ts';
import { DrainSource } from '../../lib/drain-source.ts';
import { LockFindingsError, UsageError } from '../cli/cli-errors.ts';
import { checkDatabaseUrl, describeConnectionString } from '../cli/connection-string.ts';
import { table } from '../cli/output.ts';
import { DEMO_MIGRATIONS, seedDemoDatabase } from './demo-database.ts';
import { DemoWorkload, OLD_RELEASE_APPLICATION_NAME, type WorkloadReport } from './demo-workloads.ts';
import { startEmbeddedPostgres } from './embedded-postgres.ts';
import { runLocalExecution, type EventLog, type LocalExecutionResult } from './run-local-execution.ts';
import { loadSqlFiles, readSqlFiles, type ParsedSqlFile, type SqlFile } from './sql-dump.ts';
import { versionTable, type VersionTableRow } from './version-table.ts';

export interface LocalDemoOptions {
  /** Any PostgreSQL; by default a throw-away embedded PostgreSQL 17 is started and seeded. */
  readonly databaseUrl?: string;
  /** @default the demo release bexar shipped in demo/migrations */
  readonly migrationsDirectory?: string;
  /**
   * The drain source: a LIKE pattern over the `application_name` of the old release's sessions. Required with
   * migrations other than the demo's (whose old release is `demo-app-old`): the demo's pattern would let contract
   * run while your old release is still connected. @default `demo-app-old%` with the demo's migrations
   */
  readonly drainSessions?: string;
  /** Rows of the demo table when it is seeded. @default 100000 */
  readonly rows?: number;
  /**
   * A SQL dump (e.g. `pg_dump --schema-only`) loaded into a fresh database of the throw-away PostgreSQL before the
   * run, instead of the demo's schema. Not with `databaseUrl`: emc never loads a dump into a database it did not create.
   */
  readonly schemaFile?: string;
  /** SQL run after `schemaFile` (rows to migrate, e.g. `pg_dump --data-only --inserts`). Needs `schemaFile`. */
  readonly seedFile?: string;
  /** The release to upgrade to (execution input `targetRelease`). @default the newest release of the migrations */
  readonly release?: string;
  /** End the run successfully after this phase (execution input `stopAfter`). @default run to the end */
  readonly stopAfter?: 'expand' | 'migrate';
  /** Batch settings overrides, as given (execution input `settings`, validated as the engine validates it). */
  readonly settings?: unknown;
  /** Print one JSON document instead of the human report. */
  readonly json?: boolean;
  /** Show the handlers' structured logs. */
  readonly verbose?: boolean;
  readonly out?: (line: string) => void;
}

export interface LocalDemoResult {
  readonly succeeded: boolean;
  readonly execution: LocalExecutionResult;
  readonly history: readonly HistoryEntry[];
  /** The database's version before the run, which the version table starts from. */
  readonly versionBefore: string;
  readonly versions: readonly VersionTableRow[];
  readonly workloads: readonly WorkloadReport[];
  /** Why no demo workload ran (your own migrations, or a database past the demo's release n-1); absent when they ran. */
  readonly noWorkload?: string;
}

/** How long the old release's last instance keeps running after it is taken out of service. */
const OLD_RELEASE_DRAIN_MS = 1500;

/** The local run's own batch settings: a short migrate budget, so the migrate loop is visible on 100k rows. */
const LOCAL_SETTINGS: SettingsOverrides = { migrateBudgetMs: 2000 };

/** The database `--schema` is loaded into, on the throw-away server. */
const SCHEMA_DATABASE = 'emc_local';

/**
 * `npm start`: the whole upgrade workflow on this machine. Synthesizes the CDK app, runs its state machine with
 * aws-local-stepfunctions, each Task the deployed Lambda bundle over the Data API emulator backed by PostgreSQL, with
 * the demo application's old and
 * new releases writing throughout; prints each state as it is entered and left, the step history, the composite
 * version after every step, and what the two workloads saw.
 */
export async function runLocalDemo(options: LocalDemoOptions = {}): Promise<LocalDemoResult> {
  const out = options.out ?? ((line: string) => console.log(line));
  const say = options.json ? () => {} : out;
  const migrationsDirectory = resolve(options.migrationsDirectory ?? DEMO_MIGRATIONS);
  if (!existsSync(migrationsDirectory)) throw new UsageError(`--migrations ${migrationsDirectory}: no such directory`);
  const usingDemo = migrationsDirectory === resolve(DEMO_MIGRATIONS);
  if (options.databaseUrl !== undefined) checkDatabaseUrl(options.databaseUrl, '--database-url');
  const drainPattern = options.drainSessions ?? (usingDemo ? `${OLD_RELEASE_APPLICATION_NAME}%` : undefined);
  if (drainPattern === undefined) {
    throw new UsageError(
      `--drain-sessions is required with --migrations ${migrationsDirectory}: the drain gate must know your old release's sessions before contract runs.`,
      "Pass --drain-sessions with a LIKE pattern matching only the old release's application_name (e.g. --drain-sessions 'myapp-v41%').",
    );
  }
  const problem = sessionPatternProblem(drainPattern);
  if (problem) throw new UsageError(`--drain-sessions: ${problem}`);
  const sqlFiles = await schemaFiles(options);
  // What `cdk synth` refuses is refused before any server starts: an invalid catalog (CatalogError, exit 9) or a
  // lock-safety finding no emc:allow-lock allows (exit 12), as `emc lint` reports them.
  const catalog = await loadCatalog(migrationsDirectory);
  const { findings } = checkLockSafety(catalog);
  if (findings.length > 0) throw new LockFindingsError(findings);
  const input = executionInput(catalog, options);

  say(options.databaseUrl ? `Using ${describeConnectionString(options.databaseUrl)}.` : 'Starting a throw-away embedded PostgreSQL 17 (initdb takes a few seconds)...');
  const server = options.databaseUrl ? undefined : await startEmbeddedPostgres({ name: 'local' });
  let databaseUrl = options.databaseUrl ?? server!.url;
  try {
    if (server) say(`Started it on port ${server.port}.`);
    if (sqlFiles) {
      databaseUrl = await loadSqlFiles(server!.url, SCHEMA_DATABASE, sqlFiles);
      say(
        `Loaded ${sqlFiles.map((f) => `${f.file.option} ${f.file.path} (${f.statements.length} statements)`).join(' and ')} into the database ${SCHEMA_DATABASE}.`,
      );
    }
    const client = new PgSqlClient(databaseUrl);
    let fresh: boolean;
    let versionBefore: CompositeVersion;
    try {
      const state = await readState(client);
      fresh = state.applied.length === 0;
      versionBefore = state.version;
      if (usingDemo && fresh && !sqlFiles && !(await tableExists(client, 'images'))) {
        const rows = options.rows ?? 100_000;
        say(`Seeding the demo table images with ${rows.toLocaleString('en-US')} rows (release n-1's schema).`);
        await seedDemoDatabase(client, rows);
      }
    } finally {
      await client.close();
    }

    // The demo's two releases: only meaningful on the demo schema before bexar.
    const workloads = usingDemo && fresh && !sqlFiles ? { old: new DemoWorkload('old', databaseUrl), new: new DemoWorkload('new', databaseUrl) } : undefined;
    // Only the workloads that were started wrote anything to report (release n never starts with --stop-after expand).
    const started: DemoWorkload[] = [];
    const start = (workload: DemoWorkload) => {
      if (!started.includes(workload)) (started.push(workload), workload.start());
    };
    if (workloads) {
      start(workloads.old);
      say(`Release n-1 of the demo application writes through is_public/owner (application_name ${OLD_RELEASE_APPLICATION_NAME}).`);
    }

    say(
      'Synthesizing the CDK app: loading and checking the migrations, bundling the Lambda functions (built from source on the first run ' +
        'inside the repository, then reused) and staging their assets, as `cdk synth` does; this takes a few seconds...',
    );
    const onSynthesized = (ms: number) =>
      say(
        `Synthesized in ${(ms / 1000).toFixed(1)} s. Running its state machine with aws-local-stepfunctions: each Task invokes the deployed ` +
          'bundle from its CDK asset, the bytes `cdk deploy` uploads, in a node process of its own, over an RDS Data API emulator on loopback:',
      );
    const entered = new Map<string, number>();
    const onEvent = (event: EventLog) => {
      if (!('state' in event) || !event.state) return;
      const name = event.state.name;
      if (event.type === 'StateEntered') {
        entered.set(name, event.timestamp);
        say(`  -> ${name}`);
        if (name === STATE_NAMES.migrate && workloads) start(workloads.new);
        // Release n-1 is taken out of service once migrate is done; its last instance goes a moment later, so the
        // drain gate is seen waiting for it.
        if (name === CONTROL_STATE_NAMES.startDrainWait && workloads) {
          setTimeout(() => void workloads.old.stop(), OLD_RELEASE_DRAIN_MS);
        }
      } else if (event.type === 'StateExited') {
        const ms = event.timestamp - (entered.get(name) ?? event.timestamp);
        say(`  <- ${name} (${ms} ms)${describeOutput(name, event.state.output)}`);
      } else if (event.type === 'StateRetried') {
        say(`  ~~ ${name} retried`);
      } else if (event.type === 'StateFailed') {
        say(`  !! ${name} failed`);
      }
    };
    const execution = await runLocalExecution({
      databaseUrl,
      migrationsDirectory,
      drainSource: DrainSource.databaseSessions(drainPattern),
      input,
      settings: LOCAL_SETTINGS,
      onEvent,
      onSynthesized,
      logLevel: options.verbose ? 'INFO' : 'SILENT',
      onLog: options.verbose ? (line) => out(`     ${line}`) : undefined,
    });
    if (workloads) {
      await workloads.old.stop();
      await workloads.new.stop();
    }
    const reports: WorkloadReport[] = [];
    for (const workload of started) reports.push(await workload.verify(databaseUrl));

    const reader = new PgSqlClient(databaseUrl);
    let history: HistoryEntry[];
    try {
      history = await readHistory(reader, execution.executionArn);
    } finally {
      await reader.close();
    }
    const versions = versionTable(history, versionBefore);
    const succeeded = execution.status === 'SUCCEEDED' && reports.every((r) => r.failed === 0 && r.lost === 0);
    const noWorkload = workloads
      ? undefined
      : sqlFiles
        ? "the schema is your own, loaded with --schema; the demo application only writes to the demo's schema"
        : usingDemo
          ? "the database was not at the demo's release n-1, which the demo application needs"
          : "these are your own migrations; the demo application only writes to the demo's schema";
    const result: LocalDemoResult = {
      succeeded,
      execution,
      history,
      versionBefore: formatVersion(versionBefore),
      versions,
      workloads: reports,
      ...(noWorkload ? { noWorkload } : {}),
    };
    if (options.json) {
      out(JSON.stringify({ ...result, execution: { ...execution, events: undefined } }, null, 2));
    } else {
      report(out, result, input.stopAfter);
    }
    return result;
  } finally {
    await server?.stop();
  }
}

function report(out: (line: string) => void, result: LocalDemoResult, stopAfter: ExecutionInput['stopAfter']): void {
  const { execution } = result;
  out('');
  out(`Execution ${execution.executionArn}: ${execution.status}`);
  if (execution.status === 'FAILED') {
    out(`  Error: ${execution.error}`);
    for (const line of (execution.cause ?? '').split('\n')) out(`  ${line}`);
  }
  out('');
  out('Step history:');
  for (const line of table(
    ['step', 'phase', 'outcome', 'duration', 'rows'],
    result.history.map((h) => [h.stepId, h.phase, h.outcome, `${h.durationMs ?? '-'} ms`, h.rowsAffected === undefined ? '' : String(h.rowsAffected)]),
    { rule: true },
  ).split('\n')) {
    out(`  ${line}`);
  }
  out('');
  out(`Database version after each step (as in the Glance zero-downtime upgrade table), from ${result.versionBefore} before the run:`);
  const versions = result.versions.map((v) => [v.stage, v.identifier, v.comment]);
  for (const line of table(['stage', 'database identifier', 'comment'], versions, { rule: true }).split('\n')) {
    out(`  ${line}`);
  }
  if (result.workloads.length > 0) {
    out('');
    out('Application writes during the upgrade:');
    for (const line of table(
      ['release', 'attempted', 'failed', 'lost'],
      result.workloads.map((w) => [w.release === 'old' ? 'n-1 (old)' : 'n (new)', String(w.attempted), String(w.failed), String(w.lost)]),
      { rule: true },
    ).split('\n')) {
      out(`  ${line}`);
    }
    for (const w of result.workloads) for (const e of w.errors) out(`  ${w.release}: ${e}`);
  }
  out('');
  const done = stopAfter ? `Stopped after ${stopAfter}, as --stop-after asked; a run without it continues from there.` : 'Upgrade completed.';
  if (!result.succeeded) out('The local run did not succeed.');
  else if (result.workloads.length > 0) out(stopAfter ? `${done} No failed and no lost write.` : 'Upgrade completed with no failed and no lost write.');
  else out(`${done} No demo workload ran (${result.noWorkload}), so no application write was checked.`);
}

/** The part of a state's output an operator wants to see in the running log: the task's result, read with the contract. */
function describeOutput(name: string, output: unknown): string {
  const task = TASK_BY_STATE_NAME.get(name);
  if (task === undefined || typeof output !== 'object' || output === null) return '';
  const parsed = parseTaskResult(task, (output as Record<string, unknown>)[RESULT_KEYS[task]]);
  if (!parsed.ok) return '';
  const result = parsed.value;
  if ('calls' in result) {
    // The steps this call worked on, each with its own progress: which step a slow migration is in.
    const steps = result.steps
      .map((step) => `${step.stepId} ${step.rowsDone} done${step.finished ? ', finished' : `, ${step.remaining ?? '?'} remaining`}`)
      .join('; ');
    const total = result.finished ? 'all steps finished' : `${result.rowsRemaining ?? '?'} remaining in all`;
    return `: ${steps || 'no step to run'} (${result.rowsThisCall} rows this call; ${result.rowsDone} done, ${total})`;
  }
  if ('polls' in result) return `: ${result.summary}`;
  if ('stepsRun' in result) return `: ${result.stepsRun.join(', ') || 'nothing to do'} -> ${result.versionAfter}`;
  if ('target' in result) return `: target ${result.target}, version ${result.versionBefore}`;
  return '';
}

/** The tasks whose results the running log describes, by the name of their state. */
const TASK_BY_STATE_NAME = new Map<string, 'start' | 'expand' | 'migrate' | 'drain' | 'contract'>([
  [STATE_NAMES.start, 'start'],
  [STATE_NAMES.expand, 'expand'],
  [STATE_NAMES.migrate, 'migrate'],
  [STATE_NAMES.drain, 'drain'],
  [STATE_NAMES.contract, 'contract'],
]);

async function tableExists(client: PgSqlClient, name: string): Promise<boolean> {
  const result = await client.query<{ present: boolean }>('SELECT to_regclass(:name) IS NOT NULL AS present', { name });
  return result.rows[0]?.present === true;
}

/** `--schema` and `--seed`, read and parsed before any server starts; undefined without `--schema`. */
async function schemaFiles(options: LocalDemoOptions): Promise<ParsedSqlFile[] | undefined> {
  if (options.seedFile !== undefined && options.schemaFile === undefined) {
    throw new UsageError('--seed needs --schema: the seed runs on the schema --schema loads.', 'Pass the schema dump with --schema, or put the whole setup in one file given to --schema.');
  }
  if (options.schemaFile === undefined) return undefined;
  if (options.databaseUrl !== undefined) {
    throw new UsageError(
      '--schema loads a dump into a fresh database of the throw-away PostgreSQL; it cannot be combined with --database-url.',
      'Leave out --database-url (emc local starts its own PostgreSQL), or load your schema into that database yourself and leave out --schema.',
    );
  }
  if (options.rows !== undefined) throw new UsageError('--rows sizes the demo table; with --schema, put your rows in --seed.');
  if (options.migrationsDirectory === undefined) {
    throw new UsageError(
      "--schema needs --migrations: the releases to run on your schema (the demo's migrations change only the demo's table).",
      "Pass --migrations DIR (releases.json and a folder per release) and --drain-sessions with your old release's application_name pattern.",
    );
  }
  const files: SqlFile[] = [{ option: '--schema', path: resolve(options.schemaFile) }];
  if (options.seedFile !== undefined) files.push({ option: '--seed', path: resolve(options.seedFile) });
  return readSqlFiles(files);
}

/**
 * The execution input of the run, validated as the plan state validates it (each field named, the settings'
 * ranges and their combination), before anything is started: an unknown release or bad settings fail here.
 */
function executionInput(catalog: Catalog, options: LocalDemoOptions): ExecutionInput {
  const input = parseExecutionInput({
    ...(options.release !== undefined ? { targetRelease: options.release } : {}),
    ...(options.stopAfter !== undefined ? { stopAfter: options.stopAfter } : {}),
    ...(options.settings !== undefined ? { settings: options.settings } : {}),
  });
  const problems = settingsProblems(resolveSettings(LOCAL_SETTINGS, input.settings));
  if (problems.length > 0) throw new InputError(`Invalid execution input: "settings": ${problems.join('; ')}.`);
  if (input.targetRelease !== undefined) resolveTarget(catalog, input.targetRelease);
  return input;
}
