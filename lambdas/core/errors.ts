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

  /** The step this failure is about and where in its file, as far as known: the failure record carries it. */
  get location(): FailureLocation {
    return {};
  }
}

/** Where a failure happened; every part optional (a lease error is about no step). */
export interface FailureLocation {
  readonly stepId?: string;
  readonly file?: string;
  /** Line in `file` where the failed statement starts. */
  readonly line?: number;
  readonly sqlState?: string;
  /** Whether the failed step runs in one transaction (rolled back) or statement by statement. */
  readonly transactional?: boolean;
}

/** A statement of a step's file: where a SQL error happened. */
export interface StatementPlace {
  readonly file: string;
  readonly line?: number;
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
  readonly nextAction =
    'Fix the migration files listed (`emc lint --migrations DIR` checks them offline), then deploy or run again; the database was not touched.';
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

/** A migrate step's file changed after some of its batches committed: its saved cursor belongs to the old statement. */
export class MigrateStepChangedError extends EmcError {
  override readonly name = 'MigrateStepChangedError';
  readonly transient = false;
  readonly nextAction: string;
  constructor(
    readonly changed: readonly {
      stepId: string;
      file: string;
      /** Undefined when the batches were run by an earlier release of the tool, which kept no checksum. */
      progressChecksum: string | undefined;
      fileChecksum: string;
      rowsDone: number;
      batches: number;
    }[],
  ) {
    super(
      'Migrate steps changed after some of their batches committed (resuming would run the new statement from the old statement\'s cursor):\n' +
        changed
          .map(
            (c) =>
              `  - ${c.stepId} (${c.file}): ${c.rowsDone} rows in ${c.batches} batches done with ${c.progressChecksum ? `checksum ${c.progressChecksum}` : 'an unrecorded checksum (an earlier release of emc)'}, file now has ${c.fileChecksum}`,
          )
          .join('\n'),
    );
    const ids = changed.map((c) => `"${c.stepId}"`).join(', ');
    this.nextAction = `Restore the file to the content its batches ran with (and put the change in a new step), or start an execution with "restartSteps": [${ids}] to run the step again from its first key with the new file (recorded in the history). The database was not touched.`;
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
    'Wait for the other upgrade to finish (or for its lease to expire if it died; once it has ended, emc unlock releases it at once), then start again.';
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

/**
 * Why a phase gate is closed. Callers decide on `kind` (the read-only plan leaves out what only expand and migrate
 * can change); `describeGateReason` gives the sentence operators read.
 */
export type GateReason =
  /** Expand steps up to the target are not applied yet. */
  | { readonly kind: 'expand-pending'; readonly steps: readonly string[] }
  /** Migrate steps up to the target have not finished. */
  | { readonly kind: 'migrate-unfinished'; readonly steps: readonly string[] }
  /** A finished migrate step's pending query finds rows again (the old release wrote them after it finished). */
  | { readonly kind: 'pending-rows'; readonly stepId: string; readonly rows: number }
  /** The drain gate has not confirmed that the old release stopped. */
  | { readonly kind: 'not-drained' };

export function describeGateReason(reason: GateReason): string {
  switch (reason.kind) {
    case 'expand-pending':
      return `expand steps are not applied yet: ${reason.steps.join(', ')}`;
    case 'migrate-unfinished':
      return `migrations are not finished: ${reason.steps.join(', ')}`;
    case 'pending-rows':
      return `${reason.stepId} finished, but its pending query finds ${reason.rows} rows still to migrate (old-release writes after it finished; run the upgrade again and migrate will sweep them)`;
    case 'not-drained':
      return 'the old release has not been confirmed drained (tasks of it may still be running)';
  }
}

/** A phase was asked for before its gates were open: migrate before expand finished, contract too early. */
export class PhaseGateError extends EmcError {
  override readonly name = 'PhaseGateError';
  readonly transient = false;
  readonly nextAction: string;
  constructor(
    readonly phase: 'migrate' | 'contract',
    readonly reasons: readonly GateReason[],
  ) {
    super(`${phase === 'migrate' ? 'Migrate' : 'Contract'} refused: ${reasons.map(describeGateReason).join('; ')}.`);
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
    readonly options: { cause?: unknown; transactional: boolean; place?: StatementPlace },
  ) {
    super(`Step ${stepId} failed${sqlState ? ` (SQLSTATE ${sqlState})` : ''}: ${message}`, options);
    this.nextAction = options.transactional
      ? `Fix ${stepId}'s SQL (it was rolled back; the version is unchanged) and run the upgrade again: it resumes at ${stepId}.`
      : `Fix ${stepId}'s SQL and run the upgrade again: ${stepId} runs outside a transaction, so it is re-run from its first statement (each statement must be safe to repeat).`;
  }

  override get location(): FailureLocation {
    return {
      stepId: this.stepId,
      ...this.options.place,
      ...(this.sqlState ? { sqlState: this.sqlState } : {}),
      transactional: this.options.transactional,
    };
  }
}

/**
 * A keyset step's table or key cannot be walked without losing rows (a key that may be NULL, a type without an exact
 * order or text form), or not at all. Found from the catalog before the step's first batch: nothing was written.
 */
export class KeysetKeyError extends EmcError {
  override readonly name = 'KeysetKeyError';
  readonly transient = false;
  readonly nextAction: string;
  constructor(
    readonly stepId: string,
    readonly file: string,
    readonly problems: readonly string[],
  ) {
    super(`Step ${stepId} cannot walk its keyset (${file}): ${problems.join('; ')}.`);
    this.nextAction = `Fix the "emc:keyset" directive of ${stepId} (or the key column, in an expand step) and run the upgrade again; the database was not touched.`;
  }

  override get location(): FailureLocation {
    return { stepId: this.stepId, file: this.file };
  }
}

/**
 * A repeat-until-zero step's pass changed more rows than the tables it touches hold (twice over): its statement keeps
 * changing rows it already changed and would never reach a batch that changes none. Its committed batches stay.
 */
export class MigrateRunawayError extends EmcError {
  override readonly name = 'MigrateRunawayError';
  readonly transient = false;
  readonly nextAction: string;
  constructor(
    readonly stepId: string,
    message: string,
  ) {
    super(`Step ${stepId} stopped: ${message}.`);
    this.nextAction = `Make ${stepId}'s statement leave out the rows it already migrated, then start an execution with "restartSteps": ["${stepId}"] (its batches so far committed, so the changed file must be restarted explicitly).`;
  }

  override get location(): FailureLocation {
    return { stepId: this.stepId };
  }
}

/**
 * A migrate step reached the end of its passes while its pending query still counts rows. Rows may be locked by the
 * application (a batch statement using SKIP LOCKED skips them) or written again by the old release while the passes
 * ran; or the batch statement and the pending query disagree about which rows are left. Nothing is lost: the
 * committed batches stay, and the step is not recorded as applied.
 */
export class PendingRowsRemainError extends EmcError {
  override readonly name = 'PendingRowsRemainError';
  readonly transient = false;
  readonly nextAction: string;
  constructor(
    readonly stepId: string,
    readonly file: string,
    readonly pending: number,
    readonly passes: number,
  ) {
    super(
      `Step ${stepId} (${file}): its pending query still counts ${pending} rows after ${passes} passes, each ending with no row left for the batch statement, with a pause between passes. The rows may be locked by the application or written again by the old release, or the batch statement may not change the rows the pending query counts.`,
    );
    this.nextAction = `Look for long application transactions holding row locks (pg_locks, pg_stat_activity) and run the upgrade again; if the rows stay, check that ${stepId}'s statement changes exactly the rows its pending query counts.`;
  }

  override get location(): FailureLocation {
    return { stepId: this.stepId, file: this.file };
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
    readonly options?: { cause?: unknown; place?: StatementPlace },
  ) {
    super(`Step ${stepId} could not take its locks in time: ${message}`, options);
  }

  override get location(): FailureLocation {
    return { stepId: this.stepId, ...this.options?.place };
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

  override get location(): FailureLocation {
    return { stepId: this.stepId };
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

/**
 * The database rolled the transaction back because of a concurrent one: SQLSTATE 40001 serialization_failure or
 * 40P01 deadlock_detected. Nothing of it was committed, so the whole step may be retried.
 */
export class TransactionConflictError extends EmcError {
  override readonly name = 'TransactionConflictError';
  readonly transient = true;
  readonly nextAction =
    'A concurrent transaction conflicted with the step, which was rolled back; it is retried automatically. If it keeps failing, look for the conflicting application transactions in pg_stat_activity.';
  constructor(
    readonly sqlState: string,
    message: string,
    readonly options?: { cause?: unknown; stepId?: string; place?: StatementPlace },
  ) {
    super(`The transaction was rolled back by the database (SQLSTATE ${sqlState}): ${message}`, options);
  }

  override get location(): FailureLocation {
    return { ...(this.options?.stepId ? { stepId: this.options.stepId } : {}), ...this.options?.place, sqlState: this.sqlState };
  }
}

/**
 * The RDS Data API no longer knows the transaction: it rolled it back after three minutes without a call, or an
 * earlier error aborted it. Nothing of it was committed, so the whole step may be retried.
 */
export class TransactionNotFoundError extends EmcError {
  override readonly name = 'TransactionNotFoundError';
  readonly transient = true;
  readonly nextAction =
    'The step\'s transaction was rolled back by the RDS Data API (idle for three minutes, or aborted); the step is retried automatically.';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * The RDS Data API failed internally (InternalServerErrorException) on a call whose outcome is therefore unknown
 * (a statement or commit may have applied). The call is never repeated in place; the step is retried, which is
 * safe because every phase resumes from the state the database records, as after a crash.
 */
export class DataApiInternalError extends EmcError {
  override readonly name = 'DataApiInternalError';
  readonly transient = true;
  readonly nextAction =
    'The RDS Data API failed internally; the step is retried and resumes from the recorded state. If it keeps failing, check the AWS Health Dashboard for RDS.';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/**
 * A tool `emc lint` (and `cdk synth`) needs cannot run: squawk's platform binary is not installed, or squawk failed
 * without a report. The lint never passes without it.
 */
export class LintToolUnavailableError extends EmcError {
  override readonly name = 'LintToolUnavailableError';
  readonly transient = false;
  readonly nextAction =
    'Install emc-upgrade with its optional dependencies (npm install --include=optional installs squawk-cli\'s binary for this platform), or give emc lint --squawk <path>, then lint again.';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
