import {
  BadRequestException,
  BeginTransactionCommand,
  CommitTransactionCommand,
  DatabaseErrorException,
  DatabaseResumingException,
  DatabaseUnavailableException,
  ExecuteStatementCommand,
  RDSDataClient,
  RDSDataServiceException,
  RollbackTransactionCommand,
  StatementTimeoutException,
  UnsupportedResultException,
} from '@aws-sdk/client-rds-data';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { DatabaseResumingError, DatabaseUnavailableError } from '../lambdas/core/errors.ts';
import { DataApiSqlClient, parseRecords } from '../lambdas/core/sql/data-api-client.ts';
import { LOCK_NOT_AVAILABLE, QUERY_CANCELED, SqlError } from '../lambdas/core/sql/sql-client.ts';

const RESOURCE_ARN = 'arn:aws:rds:eu-west-1:123456789012:cluster:emc';
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:emc-abc123';
const DATABASE = 'app';
const META = { $metadata: {} };

const rds = mockClient(RDSDataClient);
let sdk: RDSDataClient;
let sleeps: number[];

function makeClient(retry: { attempts?: number; baseDelayMs?: number } = { attempts: 6, baseDelayMs: 10 }) {
  return new DataApiSqlClient({
    resourceArn: RESOURCE_ARN,
    secretArn: SECRET_ARN,
    database: DATABASE,
    client: sdk,
    retry,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
}

function executeInputs() {
  return rds.commandCalls(ExecuteStatementCommand).map((call) => call.args[0].input);
}

/** A Data API error as the SDK deserializes it. */
const resuming = () =>
  new DatabaseResumingException({
    message: 'The Aurora DB instance db-ABC is resuming after being auto-paused. Please wait a few seconds and try again.',
    ...META,
  });

beforeEach(() => {
  rds.reset();
  sdk = new RDSDataClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
  sleeps = [];
});

afterEach(() => {
  vi.restoreAllMocks();
});

describe('DataApiSqlClient.query: the request', () => {
  it('sends one ExecuteStatement with the ARNs, the database, JSON records and no transaction', async () => {
    rds.on(ExecuteStatementCommand).resolves({ formattedRecords: '[{"one":1}]', numberOfRecordsUpdated: 0 });
    const client = makeClient();
    await client.query('SELECT 1 AS one');
    expect(executeInputs()).toEqual([
      {
        resourceArn: RESOURCE_ARN,
        secretArn: SECRET_ARN,
        database: DATABASE,
        sql: 'SELECT 1 AS one',
        formatRecordsAs: 'JSON',
        resultSetOptions: { longReturnType: 'LONG', decimalReturnType: 'STRING' },
      },
    ]);
  });

  it('types every kind of SqlValue as the Data API expects', async () => {
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 1 });
    const bytes = new Uint8Array([0, 1, 254, 255]);
    const sql =
      'INSERT INTO t VALUES (:text, :int, :negative, :float, :unsafe_number, :big_int4, :big_int8, :huge, ' +
      ':huge_negative, :yes, :no, :nothing, :at, :bytes, :doc, :id)';
    await makeClient().query(sql, {
      text: "it's",
      int: 42,
      negative: -7,
      float: 1.5,
      unsafe_number: 2 ** 60,
      big_int4: 3_000_000_000n, // beyond 2^31: still a long
      big_int8: 9_007_199_254_740_991n, // 2^53 - 1: the largest exact long
      huge: 9_007_199_254_740_993n, // beyond 2^53
      huge_negative: -9_223_372_036_854_775_808n,
      yes: true,
      no: false,
      nothing: null,
      at: new Date(Date.UTC(2024, 1, 29, 23, 5, 9, 7)),
      bytes,
      doc: { json: { a: [1, 'two', null], b: { c: true } } },
      id: { uuid: '0b9f4a4e-8c8f-4a2b-9a57-0a2b4c6d8e10' },
    });
    const [input] = executeInputs();
    expect(input!.parameters).toEqual([
      { name: 'text', value: { stringValue: "it's" } },
      { name: 'int', value: { longValue: 42 } },
      { name: 'negative', value: { longValue: -7 } },
      { name: 'float', value: { doubleValue: 1.5 } },
      { name: 'unsafe_number', value: { doubleValue: 2 ** 60 } },
      { name: 'big_int4', value: { longValue: 3_000_000_000 } },
      { name: 'big_int8', value: { longValue: 9_007_199_254_740_991 } },
      { name: 'huge', value: { stringValue: '9007199254740993' }, typeHint: 'DECIMAL' },
      { name: 'huge_negative', value: { stringValue: '-9223372036854775808' }, typeHint: 'DECIMAL' },
      { name: 'yes', value: { booleanValue: true } },
      { name: 'no', value: { booleanValue: false } },
      { name: 'nothing', value: { isNull: true } },
      { name: 'at', value: { stringValue: '2024-02-29 23:05:09.007' }, typeHint: 'TIMESTAMP' },
      { name: 'bytes', value: { blobValue: bytes } },
      { name: 'doc', value: { stringValue: '{"a":[1,"two",null],"b":{"c":true}}' }, typeHint: 'JSON' },
      { name: 'id', value: { stringValue: '0b9f4a4e-8c8f-4a2b-9a57-0a2b4c6d8e10' }, typeHint: 'UUID' },
    ]);
    // The statement goes as written: the Data API substitutes the named parameters itself.
    expect(input!.sql).toBe(sql);
  });

  it('sends each given parameter once, however often the statement uses it', async () => {
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 0 });
    await makeClient().query("SELECT :a::int + :a AS x, ':b' AS literal, :c::int AS c", { a: 1, c: 3 });
    expect(executeInputs()[0]!.parameters).toEqual([
      { name: 'a', value: { longValue: 1 } },
      { name: 'c', value: { longValue: 3 } },
    ]);
  });

  it('sets continueAfterTimeout only for long-running statements', async () => {
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 0 });
    const client = makeClient();
    await client.query('CREATE INDEX CONCURRENTLY i ON t (c)', {}, { longRunning: true });
    await client.query('SELECT 1');
    const [long, short] = executeInputs();
    expect(long!.continueAfterTimeout).toBe(true);
    expect(short).not.toHaveProperty('continueAfterTimeout');
  });
});

describe('DataApiSqlClient.query: the result', () => {
  it('returns formattedRecords as rows keyed by column label, with rowCount = rows for a SELECT', async () => {
    rds.on(ExecuteStatementCommand).resolves({
      // What the Data API sends for a SELECT with formatRecordsAs JSON: numberOfRecordsUpdated 0, no records.
      formattedRecords:
        '[{"step_id":"r1/expand/001","pass":2,"rows_done":1500,"amount":"12.50","finished":false,"cursor":null,' +
        '"started_ms":1.7190000000005E12},{"step_id":"r1/expand/002","pass":1,"rows_done":0,"amount":"0",' +
        '"finished":true,"cursor":"42","started_ms":1719000000000.5}]',
      numberOfRecordsUpdated: 0,
    });
    const result = await makeClient().query('SELECT ...');
    expect(result.rowCount).toBe(2);
    expect(result.rows).toEqual([
      {
        step_id: 'r1/expand/001',
        pass: 2,
        rows_done: 1500,
        amount: '12.50',
        finished: false,
        cursor: null,
        started_ms: 1.7190000000005e12,
      },
      {
        step_id: 'r1/expand/002',
        pass: 1,
        rows_done: 0,
        amount: '0',
        finished: true,
        cursor: '42',
        started_ms: 1719000000000.5,
      },
    ]);
  });

  it('keeps an int8 beyond 2^53 exact, as a string, and leaves numbers inside strings alone', async () => {
    rds.on(ExecuteStatementCommand).resolves({
      formattedRecords:
        '[{"id":9223372036854775807,"neg":-9007199254740993,"safe":9007199254740991,"text":"x 9223372036854775807 \\" 12345678901234567890"}]',
      numberOfRecordsUpdated: 0,
    });
    const { rows } = await makeClient().query('SELECT ...');
    expect(rows).toEqual([
      {
        id: '9223372036854775807',
        neg: '-9007199254740993',
        safe: 9_007_199_254_740_991,
        text: 'x 9223372036854775807 " 12345678901234567890',
      },
    ]);
    expect(BigInt(rows[0]!.id as string)).toBe(9_223_372_036_854_775_807n);
  });

  it('returns numberOfRecordsUpdated as rowCount for an UPDATE, with no rows', async () => {
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 37, generatedFields: [] });
    const result = await makeClient().query('UPDATE t SET c = 1 WHERE id <= :to', { to: 100 });
    expect(result).toEqual({ rows: [], rowCount: 37 });
  });

  it('returns rowCount 0 for an UPDATE that changed nothing and for an empty SELECT', async () => {
    rds
      .on(ExecuteStatementCommand)
      .resolvesOnce({ numberOfRecordsUpdated: 0 })
      .resolvesOnce({ formattedRecords: '[]', numberOfRecordsUpdated: 0 });
    const client = makeClient();
    expect(await client.query('UPDATE t SET c = 1 WHERE false')).toEqual({ rows: [], rowCount: 0 });
    expect(await client.query('SELECT 1 WHERE false')).toEqual({ rows: [], rowCount: 0 });
  });

  it('parseRecords refuses a formattedRecords that is not an array', () => {
    expect(() => parseRecords('{"a":1}')).toThrow(/not a JSON array/);
  });
});

describe('DataApiSqlClient.transaction', () => {
  it('begins, runs each statement with the transactionId, and commits', async () => {
    rds.on(BeginTransactionCommand).resolves({ transactionId: 'tx-123' });
    rds
      .on(ExecuteStatementCommand)
      .resolvesOnce({ numberOfRecordsUpdated: 0 })
      .resolvesOnce({ formattedRecords: '[{"n":3}]', numberOfRecordsUpdated: 0 });
    rds.on(CommitTransactionCommand).resolves({ transactionStatus: 'Transaction Committed' });

    const result = await makeClient().transaction(async (tx) => {
      await tx.query('SET LOCAL lock_timeout = 2000');
      const { rows } = await tx.query<{ n: number }>('SELECT count(*)::int AS n FROM t WHERE k = :k', { k: 'x' });
      return rows[0]!.n;
    });

    expect(result).toBe(3);
    expect(rds.calls().map((call) => call.args[0].constructor.name)).toEqual([
      'BeginTransactionCommand',
      'ExecuteStatementCommand',
      'ExecuteStatementCommand',
      'CommitTransactionCommand',
    ]);
    expect(rds.commandCalls(BeginTransactionCommand)[0]!.args[0].input).toEqual({
      resourceArn: RESOURCE_ARN,
      secretArn: SECRET_ARN,
      database: DATABASE,
    });
    expect(executeInputs().map((input) => input.transactionId)).toEqual(['tx-123', 'tx-123']);
    expect(executeInputs()[1]!.parameters).toEqual([{ name: 'k', value: { stringValue: 'x' } }]);
    expect(rds.commandCalls(CommitTransactionCommand)[0]!.args[0].input).toEqual({
      resourceArn: RESOURCE_ARN,
      secretArn: SECRET_ARN,
      transactionId: 'tx-123',
    });
    expect(rds.commandCalls(RollbackTransactionCommand)).toHaveLength(0);
  });

  it('rolls back and rethrows the original error when the work throws', async () => {
    rds.on(BeginTransactionCommand).resolves({ transactionId: 'tx-9' });
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 1 });
    rds.on(RollbackTransactionCommand).resolves({ transactionStatus: 'Rollback Complete' });
    const original = new Error('the lease was lost');

    await expect(
      makeClient().transaction(async (tx) => {
        await tx.query('UPDATE t SET c = 1');
        throw original;
      }),
    ).rejects.toBe(original);

    expect(rds.commandCalls(CommitTransactionCommand)).toHaveLength(0);
    expect(rds.commandCalls(RollbackTransactionCommand).map((call) => call.args[0].input)).toEqual([
      { resourceArn: RESOURCE_ARN, secretArn: SECRET_ARN, transactionId: 'tx-9' },
    ]);
  });

  it('a failed rollback does not hide the original error', async () => {
    rds.on(BeginTransactionCommand).resolves({ transactionId: 'tx-9' });
    rds.on(RollbackTransactionCommand).rejects(new Error('rollback failed too'));
    const original = new Error('step failed');
    await expect(makeClient().transaction(async () => Promise.reject(original))).rejects.toBe(original);
    expect(rds.commandCalls(RollbackTransactionCommand)).toHaveLength(1);
  });

  it('a SQL error inside the transaction is a SqlError and the transaction is rolled back', async () => {
    rds.on(BeginTransactionCommand).resolves({ transactionId: 'tx-1' });
    rds.on(ExecuteStatementCommand).rejects(
      new DatabaseErrorException({ message: 'ERROR: relation "t" does not exist\n  Position: 15; SQLState: 42P01', ...META }),
    );
    const error = await makeClient()
      .transaction((tx) => tx.query('SELECT * FROM t'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlError);
    expect((error as SqlError).sqlState).toBe('42P01');
    expect(rds.commandCalls(RollbackTransactionCommand)).toHaveLength(1);
  });

  it('never retries a statement inside a transaction: DatabaseResumingException is thrown typed at once', async () => {
    rds.on(BeginTransactionCommand).resolves({ transactionId: 'tx-1' });
    rds.on(ExecuteStatementCommand).rejects(resuming());
    const error = await makeClient()
      .transaction((tx) => tx.query('UPDATE t SET c = 1'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseResumingError);
    expect((error as DatabaseResumingError).name).toBe('DatabaseResumingError');
    expect((error as DatabaseResumingError).transient).toBe(true);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(rds.commandCalls(RollbackTransactionCommand)).toHaveLength(1);
  });

  it('never retries a statement inside a transaction: throttling is a DatabaseUnavailableError at once', async () => {
    rds.on(BeginTransactionCommand).resolves({ transactionId: 'tx-1' });
    rds.on(ExecuteStatementCommand).rejects(
      new DatabaseUnavailableException({ message: 'The writer instance is not available', ...META }),
    );
    const error = await makeClient()
      .transaction((tx) => tx.query('UPDATE t SET c = 1'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseUnavailableError);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
  });

  it('retries BeginTransaction while Aurora resumes', async () => {
    rds.on(BeginTransactionCommand).rejectsOnce(resuming()).rejectsOnce(resuming()).resolves({ transactionId: 'tx-2' });
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 1 });
    rds.on(CommitTransactionCommand).resolves({});
    await makeClient().transaction((tx) => tx.query('UPDATE t SET c = 1'));
    expect(rds.commandCalls(BeginTransactionCommand)).toHaveLength(3);
    expect(sleeps).toEqual([10, 20]);
    expect(executeInputs()[0]!.transactionId).toBe('tx-2');
  });

  it('a failed commit is thrown typed, and a rollback is attempted so no transaction keeps its locks', async () => {
    rds.on(BeginTransactionCommand).resolves({ transactionId: 'tx-3' });
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 1 });
    rds.on(CommitTransactionCommand).rejects(
      new DatabaseErrorException({
        message: 'ERROR: could not serialize access due to concurrent update; SQLState: 40001',
        ...META,
      }),
    );
    const error = await makeClient()
      .transaction((tx) => tx.query('UPDATE t SET c = 1'))
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlError);
    expect((error as SqlError).sqlState).toBe('40001');
    expect(rds.commandCalls(CommitTransactionCommand)).toHaveLength(1);
    expect(rds.commandCalls(RollbackTransactionCommand)).toHaveLength(1);
  });
});

describe('DataApiSqlClient: retries outside a transaction', () => {
  it('retries DatabaseResumingException with exponential backoff, then succeeds', async () => {
    rds
      .on(ExecuteStatementCommand)
      .rejectsOnce(resuming())
      .rejectsOnce(resuming())
      .rejectsOnce(resuming())
      .resolves({ formattedRecords: '[{"ok":true}]', numberOfRecordsUpdated: 0 });
    const result = await makeClient().query('SELECT true AS ok');
    expect(result.rows).toEqual([{ ok: true }]);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(4);
    expect(sleeps).toEqual([10, 20, 40]);
  });

  it('gives up after the configured attempts with a DatabaseResumingError', async () => {
    rds.on(ExecuteStatementCommand).rejects(resuming());
    const error = await makeClient({ attempts: 4, baseDelayMs: 100 })
      .query('SELECT 1')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DatabaseResumingError);
    expect((error as Error).name).toBe('DatabaseResumingError');
    expect((error as Error).message).toMatch(/resuming/);
    expect((error as Error).cause).toBeInstanceOf(DatabaseResumingException);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(4);
    expect(sleeps).toEqual([100, 200, 400]);
  });

  it('defaults to 6 attempts', async () => {
    rds.on(ExecuteStatementCommand).rejects(resuming());
    const client = new DataApiSqlClient({
      resourceArn: RESOURCE_ARN,
      secretArn: SECRET_ARN,
      database: DATABASE,
      client: sdk,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
    await expect(client.query('SELECT 1')).rejects.toBeInstanceOf(DatabaseResumingError);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(6);
    expect(sleeps).toEqual([1000, 2000, 4000, 8000, 16000]);
  });

  it.each([
    ['ThrottlingException', new RDSDataServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'Rate exceeded', ...META })],
    ['DatabaseUnavailableException', new DatabaseUnavailableException({ message: 'The writer is not available', ...META })],
    ['a dropped connection', Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' })],
  ])('retries %s, then throws DatabaseUnavailableError', async (_label, error) => {
    rds.on(ExecuteStatementCommand).rejects(error);
    const thrown = await makeClient({ attempts: 3, baseDelayMs: 5 })
      .query('SELECT 1')
      .catch((e: unknown) => e);
    expect(thrown).toBeInstanceOf(DatabaseUnavailableError);
    expect((thrown as DatabaseUnavailableError).transient).toBe(true);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(3);
    expect(sleeps).toEqual([5, 10]);
  });

  it('recovers from throttling when a retry succeeds', async () => {
    rds
      .on(ExecuteStatementCommand)
      .rejectsOnce(new RDSDataServiceException({ name: 'ThrottlingException', $fault: 'client', message: 'Rate exceeded', ...META }))
      .resolves({ numberOfRecordsUpdated: 5 });
    expect((await makeClient().query('DELETE FROM t')).rowCount).toBe(5);
  });

  it('does not retry a SQL error', async () => {
    rds.on(ExecuteStatementCommand).rejects(
      new DatabaseErrorException({ message: 'ERROR: syntax error at or near "SELEC"\n  Position: 1; SQLState: 42601', ...META }),
    );
    await expect(makeClient().query('SELEC 1')).rejects.toBeInstanceOf(SqlError);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it('does not retry StatementTimeoutException', async () => {
    rds.on(ExecuteStatementCommand).rejects(new StatementTimeoutException({ message: 'Request timed out', ...META }));
    const error = await makeClient()
      .query('SELECT pg_sleep(60)')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlError);
    expect((error as SqlError).sqlState).toBe(QUERY_CANCELED);
    expect((error as Error).message).toMatch(/45 s call limit and was cancelled/);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
  });

  it('says a long-running statement that timed out may still be running', async () => {
    rds.on(ExecuteStatementCommand).rejects(new StatementTimeoutException({ message: 'Request timed out', ...META }));
    const error = await makeClient()
      .query('CREATE INDEX CONCURRENTLY i ON t (c)', {}, { longRunning: true })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlError);
    expect((error as SqlError).sqlState).toBeUndefined();
    expect((error as Error).message).toMatch(/may still be running/);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
  });

  it('passes other AWS errors through unchanged and unretried', async () => {
    const denied = new RDSDataServiceException({ name: 'AccessDeniedException', $fault: 'client', message: 'denied', ...META });
    rds.on(ExecuteStatementCommand).rejects(denied);
    await expect(makeClient().query('SELECT 1')).rejects.toBe(denied);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
  });
});

describe('DataApiSqlClient: SQL errors', () => {
  it('turns a lock timeout (DatabaseErrorException) into SqlError with SQLSTATE 55P03', async () => {
    const cause = new DatabaseErrorException({
      message: 'ERROR: canceling statement due to lock timeout; SQLState: 55P03',
      ...META,
    });
    rds.on(ExecuteStatementCommand).rejects(cause);
    const error = await makeClient()
      .query('ALTER TABLE t ADD COLUMN c int')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlError);
    expect((error as SqlError).sqlState).toBe(LOCK_NOT_AVAILABLE);
    expect((error as SqlError).message).toContain('canceling statement due to lock timeout');
    expect((error as SqlError).cause).toBe(cause);
  });

  it('reads the SQLSTATE from a BadRequestException as older endpoints send it', async () => {
    rds.on(ExecuteStatementCommand).rejects(
      new BadRequestException({
        message: 'ERROR: duplicate key value violates unique constraint "t_pkey"\n  Detail: Key (id)=(1) already exists.; SQLState: 23505',
        ...META,
      }),
    );
    const error = await makeClient()
      .query('INSERT INTO t VALUES (1)')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlError);
    expect((error as SqlError).sqlState).toBe('23505');
  });

  it('leaves sqlState undefined when the message carries none', async () => {
    rds.on(ExecuteStatementCommand).rejects(new BadRequestException({ message: 'Multistatements are not supported.', ...META }));
    const error = await makeClient()
      .query('SELECT 1; SELECT 2')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlError);
    expect((error as SqlError).sqlState).toBeUndefined();
  });

  it.each([
    new BadRequestException({ message: 'Database returned more than the allowed response size limit', ...META }),
    new DatabaseErrorException({ message: 'Database returned more than the allowed response size limit', ...META }),
    new UnsupportedResultException({ message: 'The result exceeds the size limit', ...META }),
  ])('says to page a query whose result is over the size limit ($name)', async (cause) => {
    rds.on(ExecuteStatementCommand).rejects(cause);
    const error = await makeClient()
      .query('SELECT * FROM big')
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(SqlError);
    expect((error as Error).message).toMatch(/larger than the RDS Data API returns in one call \(1 MiB\): page the query/);
    expect((error as Error).cause).toBe(cause);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(1);
  });
});

describe('DataApiSqlClient.close', () => {
  it('destroys the SDK client it created, and is unusable afterwards', async () => {
    const destroy = vi.spyOn(RDSDataClient.prototype, 'destroy');
    const client = new DataApiSqlClient({ resourceArn: RESOURCE_ARN, secretArn: SECRET_ARN, database: DATABASE });
    await client.close();
    expect(destroy).toHaveBeenCalledTimes(1);
    await expect(client.query('SELECT 1')).rejects.toThrow(/closed/);
  });

  it('leaves a client it was given alone', async () => {
    const destroy = vi.spyOn(sdk, 'destroy');
    await makeClient().close();
    expect(destroy).not.toHaveBeenCalled();
  });
});
