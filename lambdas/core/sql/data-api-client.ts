import {
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  RDSDataClient,
  RollbackTransactionCommand,
  type ColumnMetadata,
  type ExecuteStatementCommandInput,
  type Field,
  type SqlParameter,
} from '@aws-sdk/client-rds-data';
import {
  DatabaseResumingError,
  DatabaseUnavailableError,
  DataApiInternalError,
  TransactionConflictError,
  TransactionNotFoundError,
} from '../errors.ts';
import {
  QUERY_CANCELED,
  SqlError,
  StatementStillRunningError,
  type QueryOptions,
  type SqlClient,
  type SqlParams,
  type SqlResult,
  type SqlRow,
  type SqlSession,
  type SqlValue,
} from './sql-client.ts';
import { redactRowData } from './redact-row-data.ts';
import { scanSqlText } from './sql-text.ts';

export interface DataApiRetryOptions {
  /** Calls made in all (the first one included) before giving up. Default 6. */
  readonly attempts?: number;
  /** Delay before the first retry; it doubles on each further retry. Default 1000 ms. */
  readonly baseDelayMs?: number;
}

export interface DataApiSqlClientOptions {
  /** ARN of the Aurora DB cluster. */
  readonly resourceArn: string;
  /** ARN of the Secrets Manager secret holding the database credentials. */
  readonly secretArn: string;
  readonly database: string;
  /**
   * An SDK client to use instead of the one this class creates. It is not destroyed by `close()`. Configure it with
   * `maxAttempts: 1`: the SDK's own retries would repeat statements inside a transaction (see `createClient`).
   */
  readonly client?: RDSDataClient;
  readonly retry?: DataApiRetryOptions;
  /** How to wait between retries; tests replace it. */
  readonly sleep?: (ms: number) => Promise<void>;
}

const DEFAULT_ATTEMPTS = 6;
const DEFAULT_BASE_DELAY_MS = 1000;

/** Aurora Serverless v2 is waking up from a pause: the Data API asks to try again after a few seconds. */
const RESUMING_ERRORS = new Set(['DatabaseResumingException']);
/**
 * The API throttles, or the writer is briefly unavailable (failover, scaling), or the request never got an answer.
 * `StatementTimeoutException` is deliberately absent: the statement ran for 45 s and repeating it would not help.
 */
const UNAVAILABLE_ERRORS = new Set([
  'ThrottlingException',
  'ServiceUnavailableError',
  'DatabaseUnavailableException',
  // Network failures below the API: the SDK's own retries are off (see createClient), so they are classified here.
  'TimeoutError',
  'ECONNRESET',
  'ECONNREFUSED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
]);
/** How the Data API reports an error the database raised. `BadRequestException` is what older endpoints send. */
const SQL_ERRORS = new Set(['DatabaseErrorException', 'BadRequestException']);
/**
 * Result too large. Older endpoints say "Database returned more than the allowed response size limit" (as a
 * `BadRequestException` or `DatabaseErrorException`); newer ones raise `UnsupportedResultException` with "The result
 * exceeds the size limit"; the user guide's troubleshooting names it "Database response exceeded size limit". All
 * are recognised.
 */
const RESPONSE_TOO_LARGE = /allowed response size limit|exceeds the size limit|exceeded size limit/i;
/**
 * "Transaction <transaction_ID> is not found" (Aurora User Guide, Troubleshooting Data API), as a
 * `BadRequestException`; the service model also has a `TransactionNotFoundException`, recognised by name. AWS's
 * own message is the only thing that tells this BadRequestException apart.
 */
const TRANSACTION_NOT_FOUND = /^Transaction \S+ is not found/;
const SQLSTATE = /SQLState:\s*([0-9A-Z]{5})\b/i;
/** SQLSTATE 40001 serialization_failure and 40P01 deadlock_detected: the database rolled the transaction back. */
const TRANSACTION_CONFLICTS = new Set(['40001', '40P01']);
/**
 * Statements whose rows the Data API formats as JSON: "formatRecordsAs ... only applies to SELECT statements and is
 * ignored for other types of statements" (reference, ExecuteStatement). Others (DML with RETURNING) answer typed
 * `records`, read with their columnMetadata.
 */
const QUERY_KEYWORDS = new Set(['SELECT', 'WITH', 'VALUES', 'TABLE']);

/**
 * `SqlClient` over the RDS Data API (in Lambda: no VPC connection, no connection pool).
 *
 * - One statement per call; `:name` placeholders are sent as typed `parameters` that the Data API binds itself.
 *   Only the parameters of placeholders the statement uses are sent (found by a small lexical scan, `scanSqlText`,
 *   that skips quoted text and comments), and a placeholder without a value is an error before the call, exactly as
 *   in `PgSqlClient`.
 * - Rows of a SELECT are requested as JSON (`formatRecordsAs: 'JSON'`): one object per row keyed by column label.
 *   Per the Data API's JSON type mapping: int2/int4/int8 are JSON numbers (int8 values beyond 2^53 are kept exact
 *   as strings here), numeric is a string, float is a number, booleans and NULL are native, bytea is base64 text,
 *   and every other type (timestamps, uuid, json/jsonb, ...) is a string. json/jsonb columns therefore come back as
 *   text, not parsed as node-postgres does: the engine reads none.
 * - Rows of DML with RETURNING come as typed `records` (the JSON format does not apply to them), read with their
 *   `columnMetadata` into the same plain values as the JSON path (see `recordsToRows`).
 * - Size: the Data API refuses a result over 1 MiB. The engine's own queries return a handful of small rows by
 *   design (state rows, one aggregate per batch), so they never page; a query that hits the limit fails with a
 *   `SqlError` that says to page it. There is no automatic paging.
 * - Retries: only calls that are safe to repeat are retried (every call outside a transaction, and
 *   BeginTransaction): Aurora resuming, throttling and brief unavailability, with exponential backoff. A statement
 *   inside a transaction is never retried: the typed error is thrown and the state machine retries the whole step.
 *   Transient for the step, never repeated here: a serialization failure or deadlock (`TransactionConflictError`),
 *   a transaction the Data API dropped (`TransactionNotFoundError`), an internal error whose outcome is unknown
 *   (`DataApiInternalError`); see `toTypedError` for why each is safe.
 */
export class DataApiSqlClient implements SqlClient {
  private readonly client: RDSDataClient;
  private readonly ownsClient: boolean;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly sleep: (ms: number) => Promise<void>;
  private closed = false;

  constructor(private readonly options: DataApiSqlClientOptions) {
    this.ownsClient = options.client === undefined;
    this.client = options.client ?? createClient();
    this.attempts = Math.max(1, Math.floor(options.retry?.attempts ?? DEFAULT_ATTEMPTS));
    this.baseDelayMs = Math.max(0, options.retry?.baseDelayMs ?? DEFAULT_BASE_DELAY_MS);
    this.sleep = options.sleep ?? ((ms) => new Promise((resolve) => setTimeout(resolve, ms)));
  }

  async query<Row extends SqlRow = SqlRow>(sql: string, params?: SqlParams, options?: QueryOptions): Promise<SqlResult<Row>> {
    this.assertOpen();
    const input = await this.statementInput(sql, params, options, undefined);
    return this.withRetry(() => this.execute<Row>(input));
  }

  async transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T> {
    this.assertOpen();
    const begun = await this.withRetry(() =>
      this.call(
        () =>
          this.client.send(
            new BeginTransactionCommand({
              resourceArn: this.options.resourceArn,
              secretArn: this.options.secretArn,
              database: this.options.database,
            }),
          ),
        { nothingRan: true },
      ),
    );
    const transactionId = begun.transactionId;
    if (!transactionId) throw new Error('The RDS Data API began a transaction but returned no transactionId.');
    const ids = { resourceArn: this.options.resourceArn, secretArn: this.options.secretArn, transactionId };
    try {
      const result = await work({
        // Never retried: a repeated statement inside a transaction could apply twice.
        query: async <Row extends SqlRow = SqlRow>(sql: string, params?: SqlParams) =>
          this.execute<Row>(await this.statementInput(sql, params, undefined, transactionId)),
      });
      await this.call(() => this.client.send(new CommitTransactionCommand(ids)));
      return result;
    } catch (error) {
      // Also after a failed commit: a transaction left open would hold its locks until the Data API's 3-minute
      // idle timeout. If it is already gone, the rollback fails and that failure is dropped.
      try {
        await this.client.send(new RollbackTransactionCommand(ids));
      } catch {
        // The original error is the one that matters.
      }
      throw error;
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    if (this.ownsClient) this.client.destroy();
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('The Data API SQL client is closed.');
  }

  private async statementInput(
    sql: string,
    params: SqlParams | undefined,
    options: QueryOptions | undefined,
    transactionId: string | undefined,
  ): Promise<ExecuteStatementCommandInput> {
    const scan = scanSqlText(sql);
    const given = params ?? {};
    const parameters: SqlParameter[] = scan.placeholders.map((name) => {
      if (!Object.hasOwn(given, name)) throw new Error(`The SQL uses the parameter :${name}, but no value was given for it.`);
      return toSqlParameter(name, given[name]!);
    });
    // A SELECT answers JSON, where integers must stay JSON numbers (LONG); other statements answer typed records,
    // where `longReturnType: 'STRING'` keeps an int8 beyond 2^53 exact (a JSON number would be rounded by the SDK).
    const isQuery = scan.firstKeyword !== undefined && QUERY_KEYWORDS.has(scan.firstKeyword);
    return {
      resourceArn: this.options.resourceArn,
      secretArn: this.options.secretArn,
      database: this.options.database,
      sql,
      ...(parameters.length > 0 ? { parameters } : {}),
      ...(transactionId === undefined ? {} : { transactionId }),
      ...(options?.longRunning ? { continueAfterTimeout: true } : {}),
      formatRecordsAs: 'JSON',
      // Typed records (DML with RETURNING) are read by column type; the JSON format has no metadata.
      includeResultMetadata: true,
      // Numeric as exact strings in both formats.
      resultSetOptions: { longReturnType: isQuery ? 'LONG' : 'STRING', decimalReturnType: 'STRING' },
    };
  }

  private async execute<Row extends SqlRow>(input: ExecuteStatementCommandInput): Promise<SqlResult<Row>> {
    const output = await this.call(() => this.client.send(new ExecuteStatementCommand(input)), {
      continuedAfterTimeout: input.continueAfterTimeout === true,
    });
    const rows = (
      output.formattedRecords
        ? parseRecords(output.formattedRecords)
        : output.records
          ? recordsToRows(output.records, output.columnMetadata)
          : []
    ) as Row[];
    const updated = output.numberOfRecordsUpdated ?? 0;
    // DML reports its count; a SELECT reports 0 updated records and returns rows.
    return { rows, rowCount: updated === 0 && rows.length > 0 ? rows.length : updated };
  }

  /** Sends one command, turning a failure into the engine's error types. */
  private async call<Output>(send: () => Promise<Output>, call: CallKind = {}): Promise<Output> {
    try {
      return await send();
    } catch (error) {
      throw toTypedError(error, call);
    }
  }

  /** Runs a call that is safe to repeat, retrying Aurora resuming and throttling with exponential backoff. */
  private async withRetry<T>(call: () => Promise<T>): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await call();
      } catch (error) {
        const transient = error instanceof DatabaseResumingError || error instanceof DatabaseUnavailableError;
        if (!transient || attempt >= this.attempts) throw error;
        await this.sleep(this.baseDelayMs * 2 ** (attempt - 1));
      }
    }
  }
}

/**
 * The SDK's own retries are turned off: it would re-send an ExecuteStatement that failed with a 5xx or a network
 * error, which inside a transaction (or for a statement that did run) can apply it twice; the AWS guide warns of
 * exactly this. This class retries what is safe to retry. The HTTP request has no timeout of its own (the SDK
 * default), so the Data API's 45 s call limit always answers first.
 */
function createClient(): RDSDataClient {
  return new RDSDataClient({ maxAttempts: 1 });
}

function toSqlParameter(name: string, value: SqlValue): SqlParameter {
  if (value === null) return { name, value: { isNull: true } };
  switch (typeof value) {
    case 'string':
      return { name, value: { stringValue: value } };
    case 'number':
      return { name, value: Number.isSafeInteger(value) ? { longValue: value } : { doubleValue: value } };
    case 'bigint':
      return value >= -BigInt(Number.MAX_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
        ? { name, value: { longValue: Number(value) } }
        : // A JSON number beyond 2^53 would be rounded on the way: send the exact digits as a DECIMAL instead.
          { name, value: { stringValue: value.toString() }, typeHint: 'DECIMAL' };
    case 'boolean':
      return { name, value: { booleanValue: value } };
  }
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime())) throw new TypeError(`The parameter :${name} is an invalid Date.`);
    // The Data API's TIMESTAMP format is `YYYY-MM-DD HH:MM:SS[.FFF]`, without a zone: always written in UTC.
    return { name, value: { stringValue: value.toISOString().replace('T', ' ').replace('Z', '') }, typeHint: 'TIMESTAMP' };
  }
  if (value instanceof Uint8Array) return { name, value: { blobValue: value } };
  if ('json' in value) {
    const text = JSON.stringify(value.json);
    if (text === undefined) throw new TypeError(`The parameter :${name} has a JSON value that cannot be serialized.`);
    return { name, value: { stringValue: text }, typeHint: 'JSON' };
  }
  return { name, value: { stringValue: value.uuid }, typeHint: 'UUID' };
}

/**
 * Parses `formattedRecords`, an array of row objects. JSON.parse would round an int8 beyond 2^53 (the Data API writes
 * BIGINT as a JSON number), so such integer literals are quoted first and come out as exact strings, which is what
 * the engine expects of int8 (`Number()` or `BigInt()` of it).
 */
export function parseRecords(text: string): SqlRow[] {
  const parsed: unknown = JSON.parse(quoteUnsafeIntegers(text));
  if (!Array.isArray(parsed)) throw new Error('The RDS Data API returned formattedRecords that is not a JSON array.');
  return parsed as SqlRow[];
}

/** Integer column types as the Data API names them in columnMetadata.typeName (serial columns included). */
const INTEGER_TYPES = new Set(['int2', 'int4', 'int8', 'smallserial', 'serial', 'bigserial', 'oid']);

/**
 * Turns typed `records` (DML with RETURNING) into the same plain values as the JSON path: integers are numbers, an
 * int8 beyond 2^53 an exact string (it arrives as a stringValue, asked for with `longReturnType: 'STRING'`), numeric
 * and every text-like type a string, booleans and NULL native, bytea base64 text. Keys are the column labels.
 */
export function recordsToRows(records: readonly Field[][], metadata: readonly ColumnMetadata[] | undefined): SqlRow[] {
  if (records.length === 0) return [];
  if (!metadata) throw new Error('The RDS Data API returned records without columnMetadata although it was asked for.');
  const labels = metadata.map((column, i) => column.label ?? column.name ?? `?column?${i}`);
  return records.map((record) => {
    const row: SqlRow = {};
    record.forEach((field, i) => {
      row[labels[i] ?? `?column?${i}`] = fieldValue(field, metadata[i]?.typeName, labels[i]);
    });
    return row;
  });
}

function fieldValue(field: Field, typeName: string | undefined, label: string | undefined): unknown {
  if (field.isNull) return null;
  if (field.booleanValue !== undefined) return field.booleanValue;
  if (field.doubleValue !== undefined) return field.doubleValue;
  if (field.longValue !== undefined) {
    // Only a SELECT is read with longReturnType LONG; should its rows come as records, a value beyond 2^53 has
    // been rounded by JSON parsing already: refused rather than returned wrong.
    if (!Number.isSafeInteger(field.longValue)) {
      throw new SqlError(
        `The column ${label} holds an integer beyond 2^53 that the RDS Data API sent as a JSON number, which may ` +
          `have rounded it: cast the column to text in the statement.`,
        undefined,
      );
    }
    return field.longValue;
  }
  if (field.stringValue !== undefined) {
    if (typeName === undefined || !INTEGER_TYPES.has(typeName)) return field.stringValue;
    const n = Number(field.stringValue);
    return Number.isSafeInteger(n) ? n : field.stringValue;
  }
  if (field.blobValue !== undefined) return Buffer.from(field.blobValue).toString('base64');
  throw new SqlError(`The RDS Data API returned the column ${label} in a form the engine does not read (cast it to text).`, undefined);
}

function quoteUnsafeIntegers(text: string): string {
  const number = /-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?/y;
  let out = '';
  let copied = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === '"') {
      // Skip the string, escapes included.
      for (i++; i < text.length && text[i] !== '"'; i++) if (text[i] === '\\') i++;
    } else if (c === '-' || (c >= '0' && c <= '9')) {
      number.lastIndex = i;
      const token = number.exec(text)?.[0];
      if (token === undefined) continue;
      if (/^-?\d+$/.test(token) && !Number.isSafeInteger(Number(token))) {
        out += `${text.slice(copied, i)}"${token}"`;
        copied = i + token.length;
      }
      i += token.length - 1;
    }
  }
  return copied === 0 ? text : out + text.slice(copied);
}

/** What the failed call was, for the errors whose meaning depends on it. */
interface CallKind {
  /** Sent with continueAfterTimeout: a timeout leaves the statement running. */
  readonly continuedAfterTimeout?: boolean;
  /** BeginTransaction: whatever the answer, no statement ran and nothing was committed. */
  readonly nothingRan?: boolean;
}

function toTypedError(error: unknown, call: CallKind): unknown {
  const name = errorName(error);
  const message = redactRowData(error instanceof Error ? error.message : String(error));
  if (name === undefined) return error;
  if (name === 'TransactionNotFoundException' || (name === 'BadRequestException' && TRANSACTION_NOT_FOUND.test(message))) {
    // The Data API rolled the transaction back (3 minutes without a call, or an earlier error aborted it): nothing
    // of it was committed, so the step can be retried whole.
    return new TransactionNotFoundError(`The RDS Data API no longer knows the transaction: ${message}`, { cause: error });
  }
  if ((SQL_ERRORS.has(name) || name === 'UnsupportedResultException') && RESPONSE_TOO_LARGE.test(message)) {
    return new SqlError(
      `The result is larger than the RDS Data API returns in one call (1 MiB): page the query (LIMIT with a keyset ` +
        `WHERE, and one call per page) or select fewer columns. Data API: ${message}`,
      undefined,
      { cause: error },
    );
  }
  if (SQL_ERRORS.has(name)) {
    const sqlState = SQLSTATE.exec(message)?.[1]?.toUpperCase();
    if (sqlState !== undefined && TRANSACTION_CONFLICTS.has(sqlState)) {
      // A serialization failure or deadlock rolls the whole transaction back (an autocommitted statement alone):
      // nothing of it was committed, and the same work may succeed when tried again.
      return new TransactionConflictError(sqlState, message, { cause: error });
    }
    return new SqlError(databaseMessage(message), sqlState, { cause: error });
  }
  if (name === 'InternalServerErrorException') {
    // Safe to repeat only where nothing ran (BeginTransaction: retried here). Elsewhere the outcome is unknown: an
    // autocommitted statement or a commit may have applied, so this one call is never repeated in place; the step
    // as a whole is transient, because every phase is safe to re-run after a crash (the step resumes from the
    // state the database records), and a failure of unknown outcome is no worse than a crash at that point.
    return call.nothingRan
      ? new DatabaseUnavailableError(`The RDS Data API failed internally (${name}) before running anything: ${message}`, {
          cause: error,
        })
      : new DataApiInternalError(`The RDS Data API failed internally (${name}); the call may or may not have applied: ${message}`, {
          cause: error,
        });
  }
  if (name === 'StatementTimeoutException') {
    return call.continuedAfterTimeout
      ? new StatementStillRunningError(
          `The statement ran past the RDS Data API's 45 s call limit; it was sent with continueAfterTimeout, so it ` +
            `may still be running in the database (check pg_stat_activity before running it again). ${message}`,
          { cause: error },
        )
      : new SqlError(
          `The statement ran past the RDS Data API's 45 s call limit and was cancelled. ${message}`,
          QUERY_CANCELED,
          { cause: error },
        );
  }
  if (name === 'UnsupportedResultException') {
    return new SqlError(`The RDS Data API cannot return this result (cast the column to text): ${message}`, undefined, {
      cause: error,
    });
  }
  if (RESUMING_ERRORS.has(name)) {
    return new DatabaseResumingError(`Aurora is resuming from a pause (${name}): ${message}`, { cause: error });
  }
  if (UNAVAILABLE_ERRORS.has(name)) {
    return new DatabaseUnavailableError(`The RDS Data API is throttling or unavailable (${name}): ${message}`, {
      cause: error,
    });
  }
  return error;
}

/**
 * PostgreSQL's own message out of the Data API's text (`ERROR: <message>; SQLState: <code>`), as node-postgres gives
 * it: the SQLSTATE is carried apart, and the Cause then reads the same on both clients.
 */
function databaseMessage(message: string): string {
  return message.replace(/^ERROR:\s*/, '').replace(/;\s*SQLState:\s*[0-9A-Z]{5}\s*$/i, '');
}

/** The SDK's exception name, or a Node network error's code. */
function errorName(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const { name, code } = error as { name?: unknown; code?: unknown };
  if (typeof code === 'string' && UNAVAILABLE_ERRORS.has(code)) return code;
  return typeof name === 'string' ? name : undefined;
}
