/**
 * The one interface the engine uses to talk to PostgreSQL. Two implementations: `PgSqlClient` (node-postgres, for
 * local runs and tests) and `DataApiSqlClient` (the RDS Data API, in Lambda).
 *
 * Contract shared by both:
 * - `query` runs exactly ONE statement (the Data API cannot run more) with named parameters written `:name`.
 * - Values in result rows are plain JS values: numbers for int2/int4/float, `bigint`-safe strings for int8 and
 *   numeric, booleans, strings, `null`. Queries that need a number from int8 cast it (`::int`) or convert it.
 * - Outside `transaction`, no session state survives between calls (true of the Data API): never rely on `SET` or
 *   advisory locks across calls; use `SET LOCAL` inside a transaction.
 */
export type SqlValue =
  | string
  | number
  | bigint
  | boolean
  | null
  | Date
  | Uint8Array
  | { readonly json: unknown }
  | { readonly uuid: string };

export type SqlParams = Readonly<Record<string, SqlValue>>;

export type SqlRow = Record<string, unknown>;

export interface SqlResult<Row extends SqlRow = SqlRow> {
  readonly rows: Row[];
  /** Rows inserted, updated or deleted (or returned, for SELECT). */
  readonly rowCount: number;
}

export interface SqlSession {
  query<Row extends SqlRow = SqlRow>(sql: string, params?: SqlParams): Promise<SqlResult<Row>>;
}

export interface QueryOptions {
  /**
   * The statement may run for a long time (CREATE INDEX CONCURRENTLY): the Data API is told to continue after its
   * 45 s call timeout instead of cancelling it.
   */
  readonly longRunning?: boolean;
  /**
   * `statement_timeout` for this one statement, outside a transaction: PostgreSQL arms it when a statement starts,
   * so a statement cannot set its own. `PgSqlClient` sets it on the session before the statement and resets it after.
   * The RDS Data API keeps no session state between calls and has no per-call timeout: its own 45 s call limit is the
   * bound there (a cancelled call reports SQLSTATE 57014, see `DataApiSqlClient`).
   */
  readonly statementTimeoutMs?: number;
}

export interface SqlClient {
  query<Row extends SqlRow = SqlRow>(sql: string, params?: SqlParams, options?: QueryOptions): Promise<SqlResult<Row>>;
  /**
   * Runs `work` in one transaction: committed when it resolves, rolled back when it throws (the error is rethrown).
   */
  transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T>;
  /** Releases connections. The client is unusable afterwards. */
  close(): Promise<void>;
}

/** An error the database reported, with its SQLSTATE when known. Implementations throw this for SQL errors. */
export class SqlError extends Error {
  override readonly name: string = 'SqlError';
  constructor(
    message: string,
    readonly sqlState: string | undefined,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * A long-running statement outlived the client's call limit but was left running in the database (the Data API's
 * `continueAfterTimeout`): it may still succeed, so the caller must not simply repeat it.
 */
export class StatementStillRunningError extends SqlError {
  override readonly name: string = 'StatementStillRunningError';
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, undefined, options);
  }
}

/** SQLSTATE 55P03 lock_not_available, raised by `lock_timeout`. */
export const LOCK_NOT_AVAILABLE = '55P03';
/** SQLSTATE 57014 query_canceled, raised by `statement_timeout`. */
export const QUERY_CANCELED = '57014';
