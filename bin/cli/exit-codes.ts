/**
 * The exit codes of `emc`. They are a contract: pipelines branch on them (docs/ci.md) and docs/operators.md lists
 * them. Never renumber one; add new codes at the end.
 */
export const EXIT = {
  /** The command did what was asked: the execution succeeded, the database is up to date, the report was printed. */
  ok: 0,
  /**
   * The upgrade execution failed, timed out or was aborted (or the local demo failed); a phase run by hand failed or
   * was refused (a gate, the drain, the lease); `emc unlock`: the holder still runs; or an unexpected error.
   */
  failed: 1,
  /**
   * Bad arguments or options, or an invalid execution input (an unknown release, bad --settings); `emc new`: the step
   * exists; `emc contract`: no drain source; `emc unlock`: a holder it cannot check, without --force.
   */
  usage: 2,
  /** `emc check`: expand steps are pending. */
  expandPending: 3,
  /** `emc check`: expand is done, migrate steps are pending; `emc migrate`: `--max-seconds` passed with rows left. */
  migratePending: 4,
  /** `emc check`: expand and migrate are done, contract steps are pending (or contract is blocked). */
  contractPending: 5,
  /** The state machine or execution does not exist, or its ARN is invalid. */
  notFound: 6,
  /** AWS credentials are missing, expired or not allowed to make the call. */
  awsCredentials: 7,
  /** The database could not be reached or read (connection refused, authentication, Data API errors). */
  databaseUnreachable: 8,
  /** The migrations directory is invalid (a CatalogError listing every problem). */
  catalogInvalid: 9,
  /** `--timeout` elapsed while waiting for an execution; the execution itself goes on. */
  waitTimedOut: 10,
  /** The database does not match the migrations: drift, steps it does not know, or steps applied out of order. */
  databaseMismatch: 11,
  /** `emc lint`: the catalog is valid, but a lock-safety rule refuses a step no `emc:allow-lock` directive allows. */
  lintFindings: 12,
  /** `emc lint` cannot run a tool it needs (squawk's binary is missing for this platform, or it failed). */
  lintUnavailable: 13,
} as const;

export type ExitCode = (typeof EXIT)[keyof typeof EXIT];

/** One line per code, for `emc --help` and the docs. */
export const EXIT_CODE_HELP: readonly (readonly [ExitCode, string])[] = [
  [EXIT.ok, 'success (execution SUCCEEDED, database up to date, report printed)'],
  [EXIT.failed, 'the execution FAILED, TIMED_OUT or was ABORTED; a phase by hand failed or was refused; unlock: holder running; or an unexpected error'],
  [EXIT.usage, 'bad arguments, or an invalid execution input (unknown release, bad --settings); unlock: holder unverifiable without --force'],
  [EXIT.expandPending, 'check: expand steps pending'],
  [EXIT.migratePending, 'check: migrate steps pending; migrate: --max-seconds passed with rows left'],
  [EXIT.contractPending, 'check: contract steps pending (or contract blocked)'],
  [EXIT.notFound, 'state machine or execution not found, or an invalid ARN'],
  [EXIT.awsCredentials, 'AWS credentials missing, expired or denied'],
  [EXIT.databaseUnreachable, 'database unreachable or unreadable'],
  [EXIT.catalogInvalid, 'the migrations directory is invalid'],
  [EXIT.waitTimedOut, '--timeout elapsed while waiting (the execution goes on)'],
  [EXIT.databaseMismatch, 'the database does not match the migrations (drift, newer database, order)'],
  [EXIT.lintFindings, 'lint, local: lock-safety findings no emc:allow-lock directive allows'],
  [EXIT.lintUnavailable, 'lint, local: squawk cannot run here (its binary for this platform is not installed)'],
];

export function exitCodeHelp(): string {
  return ['Exit codes:', ...EXIT_CODE_HELP.map(([code, text]) => `  ${String(code).padStart(2)}  ${text}`)].join('\n');
}
