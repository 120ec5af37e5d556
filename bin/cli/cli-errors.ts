import {
  CatalogError,
  CatalogOrderError,
  DatabaseAheadError,
  DatabaseResumingError,
  DatabaseUnavailableError,
  DriftError,
  EmcError,
  formatLockFindings,
  InputError,
  LintToolUnavailableError,
  MigrateStepChangedError,
  SqlError,
  type LockFinding,
} from '../../lambdas/core/index.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';

/**
 * The CLI's own failures. Like the engine's errors, the class `name` is the contract (tests and `--json` output
 * compare it) and each carries the exit code it maps to and what to do next.
 */
export abstract class CliError extends Error {
  /** The class name as a literal, as in `EmcError` (it must survive bundling). */
  abstract override readonly name: string;
  abstract readonly exitCode: ExitCode;
  abstract readonly nextAction: string | undefined;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** A missing or contradictory option, or a value the CLI cannot use. */
export class UsageError extends CliError {
  override readonly name = 'UsageError';
  readonly exitCode = EXIT.usage;
  constructor(
    message: string,
    readonly nextAction: string | undefined = undefined,
  ) {
    super(message);
  }
}

/** Lock-safety findings no `emc:allow-lock` allows, in a command that runs the migrations (`emc lint` reports its own). */
export class LockFindingsError extends CliError {
  override readonly name = 'LockFindingsError';
  readonly exitCode = EXIT.lintFindings;
  readonly nextAction =
    'Fix each finding, or allow it in its file with a line "-- emc:allow-lock <rule> <reason>" (docs/operators.md); `emc lint` checks the directory offline.';
  constructor(readonly findings: readonly LockFinding[]) {
    super(formatLockFindings(findings));
  }
}

/** A state machine or execution that does not exist, or an ARN Step Functions rejects. */
export class NotFoundError extends CliError {
  override readonly name = 'NotFoundError';
  readonly exitCode = EXIT.notFound;
  constructor(
    message: string,
    readonly nextAction: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * An execution's history holds a task result this CLI cannot read with its task contract
 * (lambdas/core/workflow/task-contract.ts): the state machine was deployed by another release of emc-upgrade.
 */
export class ExecutionContractError extends CliError {
  override readonly name = 'ExecutionContractError';
  readonly exitCode = EXIT.failed;
  readonly nextAction = 'Use the emc release that deployed the state machine (the construct and the CLI ship together).';
  constructor(
    readonly state: string,
    readonly problems: string,
  ) {
    super(`The output of "${state}" in this execution does not match this CLI's task contract: ${problems}.`);
  }
}

/** AWS refused to authenticate or authorise the call. */
export class AwsCredentialsError extends CliError {
  override readonly name = 'AwsCredentialsError';
  readonly exitCode = EXIT.awsCredentials;
  constructor(
    message: string,
    readonly nextAction: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The database could not be reached or read. */
export class DatabaseUnreachableError extends CliError {
  override readonly name = 'DatabaseUnreachableError';
  readonly exitCode = EXIT.databaseUnreachable;
  readonly nextAction =
    'Check --database-url (or --cluster-arn, --secret-arn and --database for the Data API), the network path and the credentials, then run the command again.';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

/** SDK error names meaning "who you are is not accepted": no credentials, expired ones, or no permission. */
const CREDENTIAL_ERRORS = new Set([
  'CredentialsProviderError',
  'TokenProviderError',
  'ExpiredToken',
  'ExpiredTokenException',
  'UnrecognizedClientException',
  'InvalidClientTokenId',
  'InvalidSignatureException',
  'SignatureDoesNotMatch',
]);
const DENIED_ERRORS = new Set(['AccessDeniedException', 'AccessDenied', 'ForbiddenException', 'NotAuthorized']);

/** Turns an AWS SDK authentication or authorisation failure into an `AwsCredentialsError`; anything else as is. */
export function asAwsCredentialsError(error: unknown): unknown {
  const name = errorName(error);
  const message = error instanceof Error ? error.message : String(error);
  if (name !== undefined && CREDENTIAL_ERRORS.has(name)) {
    return new AwsCredentialsError(
      `No usable AWS credentials (${name}: ${message}).`,
      'Set AWS_PROFILE (run "aws sso login" for SSO profiles) or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, and AWS_REGION; in CI, assume the deployment role first.',
      { cause: error },
    );
  }
  if (name !== undefined && DENIED_ERRORS.has(name)) {
    return new AwsCredentialsError(
      `AWS denied the call (${name}: ${message}).`,
      'Grant this identity states:StartExecution, states:DescribeExecution, states:GetExecutionHistory, states:ListExecutions and states:ListStateMachines on the upgrade state machine (and rds-data:ExecuteStatement, secretsmanager:GetSecretValue for the Data API).',
      { cause: error },
    );
  }
  return error;
}

export function errorName(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const name = (error as { name?: unknown }).name;
  return typeof name === 'string' ? name : undefined;
}

/** What the CLI prints for a failure and the code it exits with. */
export interface CliFailure {
  readonly exitCode: ExitCode;
  /** The error class name (`InputError`, `NotFoundError`, ...). */
  readonly error: string;
  readonly message: string;
  readonly nextAction: string | undefined;
}

/**
 * Maps any thrown value to its exit code and message, by class and `name` only (never by message text). The
 * engine's typed errors keep their own `nextAction`.
 */
export function describeFailure(error: unknown): CliFailure {
  const typed = asAwsCredentialsError(error);
  const message = typed instanceof Error ? typed.message : String(typed);
  const name = errorName(typed) ?? 'Error';
  if (typed instanceof CliError) return { exitCode: typed.exitCode, error: name, message, nextAction: typed.nextAction };
  if (typed instanceof EmcError) return { exitCode: engineExitCode(typed), error: name, message, nextAction: typed.nextAction };
  if (typed instanceof SqlError) {
    const unreachable = new DatabaseUnreachableError(`Cannot read the database: ${message}`, { cause: typed });
    return { exitCode: unreachable.exitCode, error: unreachable.name, message: unreachable.message, nextAction: unreachable.nextAction };
  }
  return { exitCode: EXIT.failed, error: name, message, nextAction: undefined };
}

function engineExitCode(error: EmcError): ExitCode {
  if (error instanceof InputError) return EXIT.usage;
  if (error instanceof CatalogError) return EXIT.catalogInvalid;
  if (error instanceof LintToolUnavailableError) return EXIT.lintUnavailable;
  if (
    error instanceof DriftError ||
    error instanceof MigrateStepChangedError ||
    error instanceof DatabaseAheadError ||
    error instanceof CatalogOrderError
  ) {
    return EXIT.databaseMismatch;
  }
  if (error instanceof DatabaseUnavailableError || error instanceof DatabaseResumingError) return EXIT.databaseUnreachable;
  return EXIT.failed;
}
