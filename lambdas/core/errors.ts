/**
 * Every failure the engine reports is one of these classes. The class `name` is the contract: Step Functions
 * `Retry` and `Catch` match on it (a Lambda error's `errorType` is the thrown error's `name`), the CLI maps it to
 * an exit code, and tests compare it. Never tell errors apart by message text.
 *
 * Each class writes its `name` as a string literal equal to the class name: the Lambda bundles are minified, and a
 * name taken from the class itself (`new.target.name`) would become one letter there.
 */
export abstract class EmcError extends Error {
  abstract override readonly name: string;
  /** True when the same call may succeed if simply tried again later (the state machine retries these). */
  abstract readonly transient: boolean;
  /** What the on-call engineer should do next, in one or two sentences. */
  abstract readonly nextAction: string;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** One problem found while loading the migrations directory, always naming the file (or the directory). */
export interface CatalogProblem {
  readonly file: string;
  readonly message: string;
  readonly line?: number;
  readonly column?: number;
}

export function formatProblem(problem: CatalogProblem): string {
  const where =
    problem.line === undefined
      ? problem.file
      : `${problem.file}:${problem.line}${problem.column === undefined ? '' : `:${problem.column}`}`;
  return `${where}: ${problem.message}`;
}

/** The migrations directory is invalid. Lists every problem at once. */
export class CatalogError extends EmcError {
  override readonly name = 'CatalogError';
  readonly transient = false;
  readonly nextAction = 'Fix the migration files listed and deploy again; the database was not touched.';
  constructor(readonly problems: readonly CatalogProblem[]) {
    super(
      `The migrations catalog has ${problems.length} problem${problems.length === 1 ? '' : 's'}:\n` +
        problems.map((p) => `  - ${formatProblem(p)}`).join('\n'),
    );
  }
}

/** An applied step's file has changed since it was applied. */
export class DriftError extends EmcError {
  override readonly name = 'DriftError';
  readonly transient = false;
  readonly nextAction =
    'Restore the applied migration files to their applied content (add a new step for new changes); the database was not touched.';
  constructor(readonly drifted: readonly { stepId: string; appliedChecksum: string; fileChecksum: string }[]) {
    super(
      'Applied migration steps have changed since they were applied:\n' +
        drifted
          .map((d) => `  - ${d.stepId}: applied with checksum ${d.appliedChecksum}, file now has ${d.fileChecksum}`)
          .join('\n'),
    );
  }
}

/** The database records steps this code does not know, or applied steps out of the catalog's order. */
export class DatabaseAheadError extends EmcError {
  override readonly name = 'DatabaseAheadError';
  readonly transient = false;
  readonly nextAction =
    'Deploy the release of the tool that ships these steps; downgrades are not supported. The database was not touched.';
  constructor(message: string) {
    super(message);
  }
}

/** The database's applied steps do not form a prefix of the catalog (a step was inserted before an applied one). */
export class CatalogOrderError extends EmcError {
  override readonly name = 'CatalogOrderError';
  readonly transient = false;
  readonly nextAction =
    'Number new steps after the applied ones instead of inserting them earlier; the database was not touched.';
  constructor(message: string) {
    super(message);
  }
}

/** The execution input (or a CLI argument) is invalid. */
export class InputError extends EmcError {
  override readonly name = 'InputError';
  readonly transient = false;
  readonly nextAction = 'Correct the execution input and start a new execution; the database was not touched.';
  constructor(message: string) {
    super(message);
  }
}

/** Another run holds the upgrade lease. */
export class LeaseHeldError extends EmcError {
  override readonly name = 'LeaseHeldError';
  readonly transient = false;
  readonly nextAction =
    'Wait for the other upgrade to finish (or for its lease to expire if it died), then start again.';
  constructor(
    readonly holder: string,
    readonly expiresAt: Date,
  ) {
    super(`The upgrade lease is held by ${holder} until ${expiresAt.toISOString()}; only one upgrade may run at a time.`);
  }
}

/** This run no longer holds the lease it needs (it expired and another run took it, or it was never taken). */
export class LeaseLostError extends EmcError {
  override readonly name = 'LeaseLostError';
  readonly transient = false;
  readonly nextAction = 'Start a new execution; another upgrade may have taken over the database.';
  constructor(message: string) {
    super(message);
  }
}

/**
 * The lease row stayed locked by another transaction for longer than `lock_timeout`: a run in the middle of one of
 * its steps, or a holder frozen inside its transaction. Failing fast instead of queueing keeps every lease statement
 * bounded; it is transient because either that transaction ends (it commits, or the server ends a frozen engine
 * transaction after `idleInTransactionTimeoutMs`) and the same call then succeeds or gets a definite answer.
 */
export class LeaseBusyError extends EmcError {
  override readonly name = 'LeaseBusyError';
  readonly transient = true;
  readonly nextAction =
    'Retried automatically. If it keeps failing, a session holds a lock on the emc.lease row: find it in pg_locks and pg_stat_activity (an idle-in-transaction session) and end it with pg_terminate_backend.';
  constructor(
    readonly blockingPid: number | undefined,
    readonly lockTimeoutMs: number,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(
      `The upgrade lease row is locked by another transaction${blockingPid === undefined ? '' : ` (backend pid ${blockingPid})`} that did not end within the ${lockTimeoutMs} ms lock timeout: ${detail}`,
      options,
    );
  }
}

/** A phase was asked for before its gates were open: migrate before expand finished, contract too early. */
export class PhaseGateError extends EmcError {
  override readonly name = 'PhaseGateError';
  readonly transient = false;
  readonly nextAction: string;
  constructor(
    readonly phase: 'migrate' | 'contract',
    readonly reasons: readonly string[],
  ) {
    super(`${phase === 'migrate' ? 'Migrate' : 'Contract'} refused: ${reasons.join('; ')}.`);
    this.nextAction =
      phase === 'migrate'
        ? 'Run the upgrade from the start (expand first); the database was not touched.'
        : 'Finish expand and migrate and make sure no old-release task is running, then run the upgrade again; the database was not touched.';
  }
}

/** The SQL of a migration step failed. The step's transaction was rolled back. */
export class StepFailedError extends EmcError {
  override readonly name = 'StepFailedError';
  readonly transient = false;
  readonly nextAction: string;
  constructor(
    readonly stepId: string,
    readonly statement: string,
    readonly sqlState: string | undefined,
    message: string,
    options: { cause?: unknown; transactional: boolean },
  ) {
    super(`Step ${stepId} failed${sqlState ? ` (SQLSTATE ${sqlState})` : ''}: ${message}`, options);
    this.nextAction = options.transactional
      ? `Fix ${stepId}'s SQL (it was rolled back; the version is unchanged) and run the upgrade again: it resumes at ${stepId}.`
      : `Fix ${stepId}'s SQL and run the upgrade again: ${stepId} runs outside a transaction, so it is re-run from its first statement (each statement must be safe to repeat).`;
  }
}

/**
 * An engine statement outside a batch (a state or history read or write, a lease statement, a pending query) ran
 * past the engine's statement timeout (`engineStatementTimeoutMs`, kept under the RDS Data API's 45 s call limit)
 * and PostgreSQL cancelled it; its transaction was rolled back. Not retried: the same statement would be as slow.
 */
export class EngineTimeoutError extends EmcError {
  override readonly name = 'EngineTimeoutError';
  readonly transient = false;
  readonly nextAction =
    'Nothing was changed by the cancelled statement. A slow pending query needs to be made cheaper (an index on the columns it filters on); otherwise look for what slows the database down (pg_stat_activity: long transactions, locks, load). Then run the upgrade again.';
  constructor(
    /** What timed out, e.g. "the pending query of bexar_migrate01 (bexar/migrate01.sql)". */
    readonly what: string,
    readonly timeoutMs: number,
    options?: { cause?: unknown },
  ) {
    super(
      `${what.charAt(0).toUpperCase()}${what.slice(1)} took longer than ${timeoutMs / 1000} s and was cancelled (engineStatementTimeoutMs: engine statements must finish well within the RDS Data API's 45 s call limit).`,
      options,
    );
  }
}

/** A statement waited longer than `lock_timeout` for a lock. Retried with backoff, never skipped. */
export class LockTimeoutError extends EmcError {
  override readonly name = 'LockTimeoutError';
  readonly transient = true;
  readonly nextAction =
    'A long application transaction holds a lock the step needs; the step is retried with backoff. Look for long transactions in pg_stat_activity if it keeps failing.';
  constructor(
    readonly stepId: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`Step ${stepId} could not take its locks in time: ${message}`, options);
  }
}

/**
 * A CREATE INDEX CONCURRENTLY of this step is still being built (it outlived the Data API's call limit, or a
 * previous attempt's build goes on). Retried later: by then the index is valid (the statement is skipped) or the
 * build died (its invalid index is dropped and rebuilt).
 */
export class IndexBuildInProgressError extends EmcError {
  override readonly name = 'IndexBuildInProgressError';
  readonly transient = true;
  readonly nextAction =
    'The index build continues in the database; the step is retried until it finishes. See pg_stat_progress_create_index.';
  constructor(
    readonly stepId: string,
    readonly index: string,
  ) {
    super(`Step ${stepId}: index ${index} is still being built concurrently.`);
  }
}

/** Aurora Serverless is resuming from a pause; the call may be retried after a few seconds. */
export class DatabaseResumingError extends EmcError {
  override readonly name = 'DatabaseResumingError';
  readonly transient = true;
  readonly nextAction = 'Aurora is resuming; the call is retried automatically.';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** The database or its API is throttling or briefly unreachable. */
export class DatabaseUnavailableError extends EmcError {
  override readonly name = 'DatabaseUnavailableError';
  readonly transient = true;
  readonly nextAction = 'The database was briefly unavailable; the call is retried automatically.';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
