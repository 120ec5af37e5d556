import {
  BadRequestException,
  DatabaseErrorException,
  ExecuteStatementCommand,
  RDSDataClient,
  UnsupportedResultException,
} from '@aws-sdk/client-rds-data';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { startDataApiEmulator, type DataApiEmulator } from '../bin/local/data-api-emulator/index.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import {
  DatabaseResumingError,
  DatabaseUnavailableError,
  DataApiInternalError,
  LeaseHeldError,
  LockTimeoutError,
  TransactionConflictError,
  TransactionNotFoundError,
} from '../lambdas/core/errors.ts';
import { loadCatalog, readState, type Catalog } from '../lambdas/core/index.ts';
import { DataApiSqlClient, parseRecords, recordsToRows } from '../lambdas/core/sql/data-api-client.ts';
import { placeholderNames } from '../lambdas/core/sql/named-parameters.ts';
import { ensureParserLoaded } from '../lambdas/core/sql/parser.ts';
import { LOCK_NOT_AVAILABLE, QUERY_CANCELED, SqlError, StatementStillRunningError } from '../lambdas/core/sql/sql-client.ts';
import { scanSqlText } from '../lambdas/core/sql/sql-text.ts';
import { readHistory, startHistory } from '../lambdas/core/state/history.ts';
import { acquireLease, currentLease, releaseLease } from '../lambdas/core/state/lease.ts';
import { ensureStateSchema } from '../lambdas/core/state/schema.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { endRun, startRun, upgrade } from './support/engine.ts';
import { expand } from '../lambdas/core/phases/expand.ts';
import { migrate } from '../lambdas/core/phases/migrate.ts';
import { migrate01Catalog } from '../bench/lib/postgres.ts';
import { keysetSource } from '../lambdas/core/migrate/batch-source.ts';
import { runBatch } from '../lambdas/core/migrate/run-batch.ts';
import { startProgress } from '../lambdas/core/state/migrate-progress.ts';
import { keysetMigration, type KeysetMigration } from '../lambdas/core/steps/keyset-migration.ts';

const RESOURCE_ARN = 'arn:aws:rds:eu-west-1:123456789012:cluster:emc';
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:emc-abc123';
const DATABASE = 'app';
const META = { $metadata: {} };
/**
 * The Data API calls of one migrate call of the demo release's three migrate steps besides their batches, as counted
 * (the state schema check, the state read, each step's key check, start, pending check and record, the report): a
 * ceiling, so that an added call is seen. 85 before a step's start, its record and migrate's reads became one
 * statement each.
 */
const MIGRATE_CALL_OVERHEAD_CALLS = 26;

/**
 * The Data API calls of a migrate call that runs one keyset step from its first batch to its end (5 batches), by
 * operation: the state schema check, the state read (with the lease), the key check, the step's start, its 5 batches,
 * the pending query (a READ ONLY transaction under the engine's statement timeout: begin, limits, query, commit), the
 * step's record and the report: 10 calls besides the batches (38 before they became one statement each).
 */
const ONE_KEYSET_STEP_CALLS = { BeginTransaction: 1, CommitTransaction: 1, ExecuteStatement: 13, RollbackTransaction: 0 };

const rejection = (promise: Promise<unknown>) =>
  promise.then(
    () => expect.fail('the call succeeded'),
    (e: unknown) => e as Error,
  );

/**
 * The request the client sends, and the answers of older endpoints the emulator does not give: checked against
 * canned SDK answers. Everything about what the Data API answers runs through the emulator below.
 */
describe('with canned SDK answers', () => {
  const rds = mockClient(RDSDataClient);
  let sdk: RDSDataClient;
  let sleeps: number[];
  const makeClient = (retry: { attempts?: number; baseDelayMs?: number } = { attempts: 6, baseDelayMs: 10 }) =>
    new DataApiSqlClient({
      resourceArn: RESOURCE_ARN,
      secretArn: SECRET_ARN,
      database: DATABASE,
      client: sdk,
      retry,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
  const executeInputs = () => rds.commandCalls(ExecuteStatementCommand).map((call) => call.args[0].input);

  beforeEach(() => {
    rds.reset();
    sdk = new RDSDataClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } });
    sleeps = [];
  });
  afterEach(() => {
    vi.restoreAllMocks();
  });
  afterAll(() => {
    rds.restore();
  });

  it('a SELECT: one ExecuteStatement with the ARNs, the database, JSON records, integers as numbers', async () => {
    rds.on(ExecuteStatementCommand).resolves({ formattedRecords: '[{"one":1}]', numberOfRecordsUpdated: 0 });
    await makeClient().query('SELECT 1 AS one');
    expect(executeInputs()).toEqual([
      {
        resourceArn: RESOURCE_ARN,
        secretArn: SECRET_ARN,
        database: DATABASE,
        sql: 'SELECT 1 AS one',
        formatRecordsAs: 'JSON',
        includeResultMetadata: true,
        resultSetOptions: { longReturnType: 'LONG', decimalReturnType: 'STRING' },
      },
    ]);
  });

  it.each([
    ['INSERT INTO t VALUES (1) RETURNING id', 'STRING'],
    ['  -- a comment\n UPDATE t SET c = 1 RETURNING id', 'STRING'],
    ['DELETE FROM t RETURNING id', 'STRING'],
    ['(SELECT 1)', 'LONG'],
    ['/* c */ WITH x AS (SELECT 1) SELECT * FROM x', 'LONG'],
    ['VALUES (1)', 'LONG'],
  ])('asks for int8 as exact strings where rows come as typed records: %j -> %s', async (sql, longReturnType) => {
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 0 });
    await makeClient().query(sql);
    expect(executeInputs()[0]!.resultSetOptions).toEqual({ longReturnType, decimalReturnType: 'STRING' });
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

  it('sends only the parameters the statement uses, each once however often it is used', async () => {
    rds.on(ExecuteStatementCommand).resolves({ numberOfRecordsUpdated: 0 });
    await makeClient().query("SELECT :a::int + :a AS x, ':b' AS literal, :c::int AS c -- :d", { a: 1, b: 2, c: 3, d: 4 });
    expect(executeInputs()[0]!.parameters).toEqual([
      { name: 'a', value: { longValue: 1 } },
      { name: 'c', value: { longValue: 3 } },
    ]);
  });

  it('refuses a placeholder without a value before calling the Data API', async () => {
    const error = await rejection(makeClient().query('SELECT :a AS a, :b AS b', { a: 1 }));
    expect(error.message).toBe('The SQL uses the parameter :b, but no value was given for it.');
    expect(executeInputs()).toHaveLength(0);
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

  it('retries a dropped connection, then throws DatabaseUnavailableError', async () => {
    rds.on(ExecuteStatementCommand).rejects(Object.assign(new Error('socket hang up'), { code: 'ECONNRESET' }));
    const thrown = await rejection(makeClient({ attempts: 3, baseDelayMs: 5 }).query('SELECT 1'));
    expect(thrown).toBeInstanceOf(DatabaseUnavailableError);
    expect(rds.commandCalls(ExecuteStatementCommand)).toHaveLength(3);
    expect(sleeps).toEqual([5, 10]);
  });

  it('reads the SQLSTATE from a BadRequestException as older endpoints send it', async () => {
    rds.on(ExecuteStatementCommand).rejects(
      new BadRequestException({
        message: 'ERROR: duplicate key value violates unique constraint "t_pkey"\n  Detail: Key (id)=(1) already exists.; SQLState: 23505',
        ...META,
      }),
    );
    const error = await rejection(makeClient().query('INSERT INTO t VALUES (1)'));
    expect(error).toBeInstanceOf(SqlError);
    expect((error as SqlError).sqlState).toBe('23505');
  });

  it.each([
    new BadRequestException({ message: 'Database returned more than the allowed response size limit', ...META }),
    new DatabaseErrorException({ message: 'Database returned more than the allowed response size limit', ...META }),
    new UnsupportedResultException({ message: 'The result exceeds the size limit', ...META }),
  ])('says to page a query whose result is over the size limit, as other endpoints word it ($name)', async (cause) => {
    rds.on(ExecuteStatementCommand).rejects(cause);
    const error = await rejection(makeClient().query('SELECT * FROM big'));
    expect(error).toBeInstanceOf(SqlError);
    expect(error.message).toMatch(/larger than the RDS Data API returns in one call \(1 MiB\): page the query/);
    expect(error.cause).toBe(cause);
  });

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

describe('scanSqlText finds the placeholders PostgreSQL would', () => {
  beforeAll(async () => {
    await ensureParserLoaded();
  });

  it.each([
    "SELECT :a, ':b', \":c\", $$ :d $$, $tag$ :e $tag$, :f::int, x[1:g], E'\\' :h', :i -- :j\n/* :k /* :l */ */ :m",
    'UPDATE t SET v = :v WHERE id BETWEEN :from_key AND :to_key',
    "SELECT '' || :a || 'it''s :b' AS x, $1, $$$$ || :c",
    'SELECT a.b:c FROM t',
    'SELECT :ünicode, :_x1',
  ])('%j', (sql) => {
    expect(scanSqlText(sql).placeholders).toEqual(placeholderNames(sql));
  });

  it('agrees on the SQL of the demo catalog', async () => {
    const catalog = await loadCatalog(DEMO_MIGRATIONS);
    for (const step of catalog.steps) {
      for (const statement of step.statements) {
        expect(scanSqlText(statement.sql).placeholders, step.file).toEqual(placeholderNames(statement.sql));
      }
    }
  });
});

describe('recordsToRows', () => {
  it('refuses an integer beyond 2^53 that came as a JSON number (it may have been rounded)', () => {
    expect(() => recordsToRows([[{ longValue: 2 ** 60 }]], [{ label: 'n', typeName: 'int8' }])).toThrow(/cast the column to text/);
  });

  it('parseRecords refuses a formattedRecords that is not an array', () => {
    expect(() => parseRecords('{"a":1}')).toThrow(/not a JSON array/);
  });
});

/** Over the emulated RDS Data API and a real PostgreSQL. */
describe('over the Data API emulator', () => {
  let db: TestDatabase;
  let emulator: DataApiEmulator;
  let sdk: RDSDataClient;
  let sleeps: number[];

  beforeAll(async () => {
    db = await createTestDatabase();
    emulator = await startDataApiEmulator({
      postgresUrl: db.url,
      limits: { callTimeoutMs: 1500, transactionIdleTimeoutMs: 600, maxResponseBytes: 32 * 1024 },
    });
    sdk = new RDSDataClient({
      endpoint: emulator.endpoint,
      region: 'eu-west-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
      maxAttempts: 1,
    });
    await db.pool.query(`CREATE TABLE t (id bigint PRIMARY KEY, name text, price numeric, at timestamptz, ok boolean,
      ratio float8, small int4, data bytea)`);
  });
  afterAll(async () => {
    sdk.destroy();
    await emulator.stop();
    await db.drop();
  });
  beforeEach(async () => {
    sleeps = [];
    await db.pool.query('TRUNCATE t');
  });

  const makeClient = (retry: { attempts?: number; baseDelayMs?: number } = { attempts: 6, baseDelayMs: 10 }) =>
    new DataApiSqlClient({
      resourceArn: RESOURCE_ARN,
      secretArn: SECRET_ARN,
      database: db.name,
      client: sdk,
      retry,
      sleep: async (ms) => {
        sleeps.push(ms);
      },
    });
  const count = async (where: string) => (await db.pool.query(`SELECT count(*)::int AS n FROM t WHERE ${where}`)).rows[0].n as number;

  describe('results', () => {
    const ROW = {
      id: 9_007_199_254_740_993n,
      name: "it's",
      price: 12.5,
      at: new Date(Date.UTC(2024, 1, 29, 23, 5, 9, 7)),
      ok: true,
      ratio: 0.25,
      small: 7,
      data: new Uint8Array([0, 255]),
    };
    const EXPECTED = {
      id: '9007199254740993',
      name: "it's",
      price: '12.5',
      at: '2024-02-29 23:05:09.007',
      ok: true,
      ratio: 0.25,
      small: 7,
      data: 'AP8=',
      nothing: null,
    };

    it('INSERT ... RETURNING rows come back from records, as the same plain values as a SELECT', async () => {
      const client = makeClient();
      const inserted = await client.query(
        `INSERT INTO t (id, name, price, at, ok, ratio, small, data)
         VALUES (:id, :name, :price, :at, :ok, :ratio, :small, :data)
         RETURNING id, name, price, at, ok, ratio, small, data, NULL::int8 AS nothing`,
        ROW,
      );
      expect(inserted).toEqual({ rows: [EXPECTED], rowCount: 1 });
      const selected = await client.query('SELECT id, name, price, at, ok, ratio, small, data, NULL::int8 AS nothing FROM t');
      expect(selected).toEqual({ rows: [EXPECTED], rowCount: 1 });
      // A safe int8 is a number in both paths.
      const small = await client.query('UPDATE t SET id = 5 RETURNING id');
      expect(small.rows).toEqual([{ id: 5 }]);
      expect((await client.query('SELECT id FROM t')).rows).toEqual([{ id: 5 }]);
    });

    it('rowCount is numberOfRecordsUpdated for DML, and the row count for a SELECT', async () => {
      const client = makeClient();
      expect(await client.query("INSERT INTO t (id, name) SELECT g, 'x' FROM generate_series(1, 37) g")).toEqual({ rows: [], rowCount: 37 });
      expect(await client.query('UPDATE t SET ok = true WHERE id <= :to', { to: 10 })).toEqual({ rows: [], rowCount: 10 });
      expect((await client.query('DELETE FROM t WHERE id > 30 RETURNING id')).rowCount).toBe(7);
      expect((await client.query('SELECT id FROM t WHERE id <= 3 ORDER BY id')).rowCount).toBe(3);
      expect(await client.query('UPDATE t SET ok = true WHERE false')).toEqual({ rows: [], rowCount: 0 });
      expect(await client.query('SELECT 1 WHERE false')).toEqual({ rows: [], rowCount: 0 });
    });

    it('keeps an int8 beyond 2^53 exact in a SELECT, and numbers inside strings alone', async () => {
      const { rows } = await makeClient().query(
        `SELECT 9223372036854775807::int8 AS id, -9007199254740993::int8 AS neg, 9007199254740991::int8 AS safe,
                'x 9223372036854775807 " 12345678901234567890' AS text`,
      );
      expect(rows).toEqual([
        { id: '9223372036854775807', neg: '-9007199254740993', safe: 9_007_199_254_740_991, text: 'x 9223372036854775807 " 12345678901234567890' },
      ]);
    });

    it('acquireLease gets its INSERT ... RETURNING row: the lease is taken, renewed, and refused to another run', async () => {
      const client = makeClient();
      await ensureStateSchema(client);
      const lease = await acquireLease(client, 'run-a', 60);
      expect(lease.owner).toBe('run-a');
      expect(Math.abs(lease.expiresAt.getTime() - Date.now() - 60_000)).toBeLessThan(5_000);
      expect((await acquireLease(client, 'run-a', 120)).owner).toBe('run-a');
      const refused = await rejection(acquireLease(client, 'run-b', 60));
      expect(refused).toBeInstanceOf(LeaseHeldError);
      expect((await currentLease(client))?.owner).toBe('run-a');
      expect(await releaseLease(client, 'run-a')).toBe(true);
    });

    it('startHistory gets the id of the history row it inserted', async () => {
      const client = makeClient();
      await ensureStateSchema(client);
      const catalog = await loadCatalog(writeMigrations({ 'r1/expand01_x.sql': 'SELECT 1;\n' }));
      const id = await startHistory(client, 'run-h', catalog.steps[0]!);
      expect(Number.isSafeInteger(id) && id > 0).toBe(true);
      expect(await readHistory(client, 'run-h')).toMatchObject([{ runId: 'run-h', stepId: catalog.steps[0]!.id, outcome: 'running' }]);
    });
  });

  describe('errors', () => {
    it('a database error is a SqlError with its SQLSTATE, and a text of several statements is refused', async () => {
      const client = makeClient();
      await client.query("INSERT INTO t (id, name) VALUES (1, 'a')");
      const duplicate = await rejection(client.query("INSERT INTO t (id, name) VALUES (1, 'b')"));
      expect(duplicate).toBeInstanceOf(SqlError);
      expect((duplicate as SqlError).sqlState).toBe('23505');
      const multi = await rejection(client.query("UPDATE t SET name = 'x'; SELECT 1"));
      expect(multi).toBeInstanceOf(SqlError);
      expect((multi as SqlError).sqlState).toBeUndefined();
      expect(await count("name = 'x'")).toBe(0);
      expect(sleeps).toEqual([]);
    });

    it('a lock timeout is a SqlError with SQLSTATE 55P03', async () => {
      await db.pool.query("INSERT INTO t (id, name) VALUES (1, 'a')");
      const holder = await db.pool.connect();
      try {
        await holder.query('BEGIN');
        await holder.query('LOCK TABLE t IN ACCESS EXCLUSIVE MODE');
        const error = await rejection(
          makeClient().transaction(async (tx) => {
            await tx.query("SET LOCAL lock_timeout = '100ms'");
            await tx.query('ALTER TABLE t ADD COLUMN c int');
          }),
        );
        expect(error).toBeInstanceOf(SqlError);
        expect((error as SqlError).sqlState).toBe(LOCK_NOT_AVAILABLE);
      } finally {
        await holder.query('ROLLBACK');
        holder.release();
      }
    });

    it('a result over the response size limit says to page the query', async () => {
      const error = await rejection(makeClient().query("SELECT repeat('x', 40000) AS big"));
      expect(error).toBeInstanceOf(SqlError);
      expect(error.message).toMatch(/larger than the RDS Data API returns in one call \(1 MiB\): page the query/);
    });

    it('a statement past the call limit is cancelled: SqlError 57014, not retried', async () => {
      const before = emulator.calls.ExecuteStatement;
      const error = await rejection(makeClient().query('SELECT pg_sleep(5)'));
      expect(error).toBeInstanceOf(SqlError);
      expect((error as SqlError).sqlState).toBe(QUERY_CANCELED);
      expect(error.message).toMatch(/45 s call limit and was cancelled/);
      expect(emulator.calls.ExecuteStatement - before).toBe(1);
    });

    it('a long-running statement past the call limit goes on running: StatementStillRunningError', async () => {
      const error = await rejection(
        makeClient().query("INSERT INTO t (id, name) SELECT 99, 'late' FROM pg_sleep(2.2)", {}, { longRunning: true }),
      );
      expect(error).toBeInstanceOf(StatementStillRunningError);
      expect(error.message).toMatch(/may still be running/);
      await vi.waitFor(async () => expect(await count('id = 99')).toBe(1), { timeout: 5000, interval: 100 });
    });

    it('passes other AWS errors through unchanged and unretried', async () => {
      emulator.injectFault({ error: 'AccessDeniedException', message: 'denied' });
      const before = emulator.calls.ExecuteStatement;
      const error = await rejection(makeClient().query('SELECT 1'));
      expect(error.name).toBe('AccessDeniedException');
      expect(emulator.calls.ExecuteStatement - before).toBe(1);
    });
  });

  describe('retries outside a transaction', () => {
    it('retries DatabaseResumingException with exponential backoff, then succeeds', async () => {
      emulator.injectFault({ error: 'DatabaseResumingException', operation: 'ExecuteStatement', times: 3 });
      const before = emulator.calls.ExecuteStatement;
      expect((await makeClient().query('SELECT true AS ok')).rows).toEqual([{ ok: true }]);
      expect(emulator.calls.ExecuteStatement - before).toBe(4);
      expect(sleeps).toEqual([10, 20, 40]);
    });

    it('gives up after the configured attempts with a DatabaseResumingError (default 6)', async () => {
      emulator.injectFault({ error: 'DatabaseResumingException', times: 6 });
      const before = emulator.calls.ExecuteStatement;
      const error = await rejection(
        new DataApiSqlClient({
          resourceArn: RESOURCE_ARN,
          secretArn: SECRET_ARN,
          database: db.name,
          client: sdk,
          sleep: async (ms) => {
            sleeps.push(ms);
          },
        }).query('SELECT 1'),
      );
      expect(error).toBeInstanceOf(DatabaseResumingError);
      expect(error.name).toBe('DatabaseResumingError');
      expect((error.cause as Error).name).toBe('DatabaseResumingException');
      expect(emulator.calls.ExecuteStatement - before).toBe(6);
      expect(sleeps).toEqual([1000, 2000, 4000, 8000, 16000]);
    });

    it.each(['ThrottlingException', 'DatabaseUnavailableException'])('retries %s, then throws DatabaseUnavailableError', async (name) => {
      emulator.injectFault({ error: name, times: 3 });
      const error = await rejection(makeClient({ attempts: 3, baseDelayMs: 5 }).query('SELECT 1'));
      expect(error).toBeInstanceOf(DatabaseUnavailableError);
      expect((error as DatabaseUnavailableError).transient).toBe(true);
      expect(sleeps).toEqual([5, 10]);
    });

    it('InternalServerErrorException on a statement: transient for the step, never repeated in place', async () => {
      emulator.injectFault({ error: 'InternalServerErrorException' });
      const before = emulator.calls.ExecuteStatement;
      const error = await rejection(makeClient().query("INSERT INTO t (id, name) VALUES (1, 'once')"));
      expect(error).toBeInstanceOf(DataApiInternalError);
      expect((error as DataApiInternalError).transient).toBe(true);
      expect(emulator.calls.ExecuteStatement - before).toBe(1);
      expect(sleeps).toEqual([]);
    });

    it('a deadlock or serialization failure outside a transaction is a transient TransactionConflictError', async () => {
      const error = await rejection(makeClient().query("DO $$ BEGIN RAISE EXCEPTION 'deadlock detected' USING ERRCODE = '40P01'; END $$"));
      expect(error).toBeInstanceOf(TransactionConflictError);
      expect((error as TransactionConflictError).sqlState).toBe('40P01');
      expect((error as TransactionConflictError).transient).toBe(true);
    });
  });

  describe('transactions', () => {
    it('commits the statements together; rows of RETURNING come back inside the transaction too', async () => {
      const before = emulator.calls;
      const result = await makeClient().transaction(async (tx) => {
        await tx.query("SET LOCAL lock_timeout = '2000ms'");
        const { rows } = await tx.query<{ id: number }>("INSERT INTO t (id, name) VALUES (:id, 'tx') RETURNING id", { id: 3 });
        const setting = await tx.query<{ t: string }>("SELECT current_setting('lock_timeout') AS t");
        return { id: rows[0]!.id, timeout: setting.rows[0]!.t };
      });
      expect(result).toEqual({ id: 3, timeout: '2s' });
      expect(await count('id = 3')).toBe(1);
      const after = emulator.calls;
      expect(after.BeginTransaction - before.BeginTransaction).toBe(1);
      expect(after.ExecuteStatement - before.ExecuteStatement).toBe(3);
      expect(after.CommitTransaction - before.CommitTransaction).toBe(1);
      expect(after.RollbackTransaction - before.RollbackTransaction).toBe(0);
    });

    it('rolls back and rethrows the original error when the work throws', async () => {
      const original = new Error('the lease was lost');
      const before = emulator.calls.RollbackTransaction;
      await expect(
        makeClient().transaction(async (tx) => {
          await tx.query("INSERT INTO t (id, name) VALUES (4, 'gone')");
          throw original;
        }),
      ).rejects.toBe(original);
      expect(await count('id = 4')).toBe(0);
      expect(emulator.calls.RollbackTransaction - before).toBe(1);
    });

    it('a SQL error inside the transaction is a SqlError and nothing of the transaction remains', async () => {
      const error = await rejection(
        makeClient().transaction(async (tx) => {
          await tx.query("INSERT INTO t (id, name) VALUES (5, 'gone')");
          await tx.query('SELECT * FROM no_such_table');
        }),
      );
      expect(error).toBeInstanceOf(SqlError);
      expect((error as SqlError).sqlState).toBe('42P01');
      expect(await count('id = 5')).toBe(0);
    });

    it('never retries a statement inside a transaction: DatabaseResumingException is thrown typed at once', async () => {
      emulator.injectFault({ error: 'DatabaseResumingException', operation: 'ExecuteStatement' });
      const before = emulator.calls;
      const error = await rejection(makeClient().transaction((tx) => tx.query("INSERT INTO t (id, name) VALUES (6, 'x')")));
      expect(error).toBeInstanceOf(DatabaseResumingError);
      expect(emulator.calls.ExecuteStatement - before.ExecuteStatement).toBe(1);
      expect(emulator.calls.RollbackTransaction - before.RollbackTransaction).toBe(1);
      expect(sleeps).toEqual([]);
      expect(await count('id = 6')).toBe(0);
    });

    it('retries BeginTransaction while Aurora resumes, and after an internal error (nothing ran)', async () => {
      emulator.injectFault({ error: 'DatabaseResumingException', operation: 'BeginTransaction', times: 2 });
      emulator.injectFault({ error: 'InternalServerErrorException', operation: 'BeginTransaction' });
      const before = emulator.calls.BeginTransaction;
      await makeClient().transaction((tx) => tx.query("INSERT INTO t (id, name) VALUES (7, 'x')"));
      expect(emulator.calls.BeginTransaction - before).toBe(4);
      expect(sleeps).toEqual([10, 20, 40]);
      expect(await count('id = 7')).toBe(1);
    });

    it('InternalServerErrorException inside a transaction: transient, not retried, rolled back', async () => {
      emulator.injectFault({ error: 'InternalServerErrorException', operation: 'ExecuteStatement', sqlIncludes: 'second' });
      const error = await rejection(
        makeClient().transaction(async (tx) => {
          await tx.query("INSERT INTO t (id, name) VALUES (8, 'first')");
          await tx.query("INSERT INTO t (id, name) VALUES (9, 'second')");
        }),
      );
      expect(error).toBeInstanceOf(DataApiInternalError);
      expect(await count('id IN (8, 9)')).toBe(0);
    });

    it('a serialization failure rolls the transaction back: transient TransactionConflictError', async () => {
      await db.pool.query("INSERT INTO t (id, name) VALUES (10, 'v0')");
      const error = await rejection(
        makeClient().transaction(async (tx) => {
          await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ');
          await tx.query('SELECT name FROM t WHERE id = 10');
          await db.pool.query("UPDATE t SET name = 'concurrent' WHERE id = 10");
          await tx.query("UPDATE t SET name = 'mine' WHERE id = 10");
        }),
      );
      expect(error).toBeInstanceOf(TransactionConflictError);
      expect((error as TransactionConflictError).sqlState).toBe('40001');
      expect((error as TransactionConflictError).name).toBe('TransactionConflictError');
      expect((await db.pool.query('SELECT name FROM t WHERE id = 10')).rows[0].name).toBe('concurrent');
    });

    it('a transaction the Data API rolled back after its idle limit: transient TransactionNotFoundError, nothing committed', async () => {
      const error = await rejection(
        makeClient().transaction(async (tx) => {
          await tx.query("INSERT INTO t (id, name) VALUES (11, 'idle')");
          await new Promise((resolve) => setTimeout(resolve, 1000));
          await tx.query("INSERT INTO t (id, name) VALUES (12, 'late')");
        }),
      );
      expect(error).toBeInstanceOf(TransactionNotFoundError);
      expect((error as TransactionNotFoundError).transient).toBe(true);
      expect(await count('id IN (11, 12)')).toBe(0);
    });
  });

  describe('the engine over the Data API', () => {
    let catalog: Catalog;
    beforeAll(async () => {
      catalog = await loadCatalog(DEMO_MIGRATIONS);
    });

    /**
     * A fresh database behind a Data API emulator of its own (the service's default limits: a loaded machine must not
     * turn a slow CREATE INDEX CONCURRENTLY into a timeout), reached through the real SDK and DataApiSqlClient.
     */
    async function overDataApi(
      work: (api: DataApiSqlClient, db: TestDatabase, emulator: DataApiEmulator) => Promise<void>,
      options: { latencyMs?: number } = {},
    ): Promise<void> {
      const db = await createTestDatabase();
      const emulator = await startDataApiEmulator({ postgresUrl: db.url, ...options });
      const sdk = new RDSDataClient({
        endpoint: emulator.endpoint,
        region: 'eu-west-1',
        credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
        maxAttempts: 1,
      });
      try {
        await work(new DataApiSqlClient({ resourceArn: RESOURCE_ARN, secretArn: SECRET_ARN, database: db.name, client: sdk }), db, emulator);
      } finally {
        sdk.destroy();
        await emulator.stop();
        await db.drop();
      }
    }

    it('runs the demo release (expand, migrate, contract) as over node-postgres', async () => {
      const direct = await createTestDatabase();
      try {
        await overDataApi(async (api, viaApi) => {
          await seedDemoDatabase(direct.client, 300);
          await seedDemoDatabase(api, 300);
          for (const client of [direct.client, api]) {
            const ctx = await startRun(client, 'run-1', { batchSize: 50 });
            await upgrade(ctx, catalog);
            await endRun(ctx);
          }
          const [directState, apiState] = await Promise.all([readState(direct.client), readState(api)]);
          expect(apiState.version).toEqual(directState.version);
          const dump = (d: TestDatabase) =>
            d.pool.query(`SELECT to_jsonb(i) - 'created_at' AS row FROM images i ORDER BY id`).then((r) => r.rows);
          expect(await dump(viaApi)).toEqual(await dump(direct));
          expect((await readHistory(api)).map((h) => [h.stepId, h.outcome])).toEqual(
            (await readHistory(direct.client)).map((h) => [h.stepId, h.outcome]),
          );
        });
      } finally {
        await direct.drop();
      }
    });

    it('runs each migrate batch as one ExecuteStatement, keyset and repeat-until-zero alike, no transaction', async () => {
      await overDataApi(async (api, _db, emulator) => {
        await seedDemoDatabase(api, 300);
        // Fixed batches of 50: several batches per step.
        const ctx = await startRun(api, 'run-calls', { batchSize: 50, targetBatchMs: 0 });
        await expand(ctx, catalog);
        const atBatch: { stepId: string; calls: Record<string, number> }[] = [];
        const before = emulator.calls;
        const result = await migrate({ ...ctx, onEvent: (e) => e.type === 'batch' && atBatch.push({ stepId: e.stepId, calls: emulator.calls }) }, catalog);
        const after = emulator.calls;
        expect(result.finished).toBe(true);
        const perBatch = atBatch.slice(1).flatMap((b, i) => {
          const previous = atBatch[i]!;
          if (b.stepId !== previous.stepId) return [];
          return [Object.fromEntries(Object.entries(b.calls).flatMap(([op, n]) => (n === previous.calls[op] ? [] : [[op, n - previous.calls[op]!]])))];
        });
        expect(new Set(atBatch.map((b) => b.stepId))).toEqual(new Set(['bexar_migrate01', 'bexar_migrate02', 'bexar_migrate03']));
        expect(perBatch.length).toBeGreaterThanOrEqual(11);
        for (const calls of perBatch) expect(calls).toEqual({ ExecuteStatement: 1 });
        const total = (calls: Record<string, number>) => Object.values(calls).reduce((a, b) => a + b, 0);
        // The rest of the call: its reads, and each step's start, end of pass and record (see the report).
        const others = total(after) - total(before) - result.batchesThisCall;
        expect(others).toBeLessThanOrEqual(MIGRATE_CALL_OVERHEAD_CALLS);
        await endRun(ctx);
      });
    });

    it('makes a fixed number of calls besides its batches in a migrate call that runs one keyset step to its end', async () => {
      // Over the Data API every call is a round trip: the calls of a migrate call are pinned, so none grows back unseen.
      const oneStep = await migrate01Catalog();
      await overDataApi(async (api, _db, emulator) => {
        await seedDemoDatabase(api, 300);
        // 300 rows in fixed batches of 70: four full batches and a last one of 20 keys that ends the pass.
        const ctx = await startRun(api, 'run-one-step', { batchSize: 70, targetBatchMs: 0 });
        await expand(ctx, oneStep);
        const before = emulator.calls;
        const result = await migrate(ctx, oneStep);
        const after = emulator.calls;
        expect(result).toMatchObject({ finished: true, batchesThisCall: 5, stepsFinished: ['bexar_migrate01'] });
        const calls = Object.fromEntries(Object.entries(after).map(([op, n]) => [op, n - before[op as keyof typeof before]]));
        expect(calls).toEqual(ONE_KEYSET_STEP_CALLS);
        await endRun(ctx);
      });
    });

    it("tells a batch's time outside the database (its round trip), which counts toward the pause before the next batch", async () => {
      await overDataApi(
        async (api, db) => {
          await db.pool.query(`CREATE TABLE nums (id int PRIMARY KEY, v int NOT NULL)`);
          await db.pool.query(`INSERT INTO nums SELECT g, g FROM generate_series(1, 10) g`);
          const catalog = await loadCatalog(
            writeMigrations({
              'r1/expand01_add_doubled.sql': 'ALTER TABLE nums ADD COLUMN doubled int;\n',
              'r1/migrate01_double.sql':
                '-- emc:keyset table=nums key=id\n' +
                'UPDATE nums SET doubled = v * 2 FROM (SELECT pg_sleep(0.2)) pause WHERE id BETWEEN :from_key AND :to_key;\n',
            }),
          );
          const ctx = await startRun(api, 'run-pause', { batchSize: 100 });
          await expand(ctx, catalog);
          const step = catalog.steps.find((s): s is KeysetMigration => s.kind === 'keyset')!;
          const source = await keysetSource(api, step);
          const lease = { owner: ctx.runId, ttlSeconds: ctx.settings.leaseTtlSeconds, lockTimeoutMs: ctx.settings.lockTimeoutMs };
          const progress = await startProgress(api, lease, step, keysetMigration.describe(step));
          const started = performance.now();
          const batch = await runBatch(ctx, step, source, progress, 100);
          const callMs = performance.now() - started;
          expect(batch).toMatchObject({ ran: true, rows: 10 });
          // The emulator waits 30 ms before it answers; the 200 ms asleep in the statement are the database's own.
          expect(batch.outsideDatabaseMs).toBeGreaterThanOrEqual(30);
          expect(batch.outsideDatabaseMs).toBeLessThan(callMs - 200);
          await endRun(ctx);
        },
        { latencyMs: 30 },
      );
    });

    it('gives up a batch behind an application row lock after lock_timeout, set inside the batch statement', async () => {
      await overDataApi(async (api, viaApi) => {
        const app = await viaApi.pool.connect();
        try {
          await seedDemoDatabase(api, 300);
          const ctx = await startRun(api, 'run-locked', { batchSize: 100, lockTimeoutMs: 300 });
          await expand(ctx, catalog);
          // The application holds a row of the second batch: no session state carries a lock_timeout between calls.
          await app.query('BEGIN');
          await app.query('SELECT * FROM images WHERE id = 150 FOR UPDATE');
          const error = await rejection(migrate(ctx, catalog));
          expect(error).toBeInstanceOf(LockTimeoutError);
          expect((error as LockTimeoutError).stepId).toBe('bexar_migrate01');
          expect(error.message).toContain('bexar/migrate01_backfill_visibility.sql');
          const progress = await viaApi.pool.query(`SELECT cursor, batches::int FROM emc.migrate_progress WHERE step_id = 'bexar_migrate01'`);
          expect(progress.rows).toEqual([{ cursor: '100', batches: 1 }]);
          await app.query('ROLLBACK');
        } finally {
          app.release();
        }
      });
    });
  });
});
