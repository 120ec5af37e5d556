import {
  BeginTransactionCommand,
  CommitTransactionCommand,
  ExecuteStatementCommand,
  RDSDataClient,
  RollbackTransactionCommand,
  type ExecuteStatementCommandInput,
} from '@aws-sdk/client-rds-data';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startDataApiEmulator, type DataApiEmulator } from '../bin/local/data-api-emulator/index.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

const RESOURCE_ARN = 'arn:aws:rds:eu-west-1:123456789012:cluster:emc';
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:emc-abc123';

let db: TestDatabase;
let emulator: DataApiEmulator;
let sdk: RDSDataClient;

beforeAll(async () => {
  db = await createTestDatabase();
  emulator = await startDataApiEmulator({
    postgresUrl: db.url,
    limits: { callTimeoutMs: 1500, transactionIdleTimeoutMs: 800, maxResponseBytes: 64 * 1024, maxSqlLength: 2000 },
  });
  sdk = new RDSDataClient({
    endpoint: emulator.endpoint,
    region: 'eu-west-1',
    credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    maxAttempts: 1,
  });
  await db.pool.query(`CREATE TABLE item (id bigint PRIMARY KEY, name text NOT NULL, price numeric, at timestamptz,
    ok boolean, ratio float8, data bytea, doc jsonb, uid uuid, small int4)`);
});

afterAll(async () => {
  sdk.destroy();
  await emulator.stop();
  await db.drop();
});

const execute = (input: Omit<ExecuteStatementCommandInput, 'resourceArn' | 'secretArn'>) =>
  sdk.send(new ExecuteStatementCommand({ resourceArn: RESOURCE_ARN, secretArn: SECRET_ARN, ...input }));
const begin = async () =>
  (await sdk.send(new BeginTransactionCommand({ resourceArn: RESOURCE_ARN, secretArn: SECRET_ARN }))).transactionId!;
const commit = (transactionId: string) =>
  sdk.send(new CommitTransactionCommand({ resourceArn: RESOURCE_ARN, secretArn: SECRET_ARN, transactionId }));
const rollback = (transactionId: string) =>
  sdk.send(new RollbackTransactionCommand({ resourceArn: RESOURCE_ARN, secretArn: SECRET_ARN, transactionId }));
const failure = (promise: Promise<unknown>) => promise.then(() => expect.fail('the call succeeded'), (e: Error) => e);

describe('the wire protocol, through the real SDK', () => {
  it('runs a SELECT and answers formattedRecords per the JSON type mapping', async () => {
    const out = await execute({
      sql: `SELECT 42::int4 AS i, 9223372036854775807::int8 AS big, 12.50::numeric AS n, true AS b, NULL::text AS z,
              1.5::float8 AS f, '\\x00ff'::bytea AS bin, timestamptz '2024-02-29 23:05:09.007+00' AS at,
              '{"a": 1}'::jsonb AS doc`,
      formatRecordsAs: 'JSON',
    });
    expect(out.records).toBeUndefined();
    expect(out.columnMetadata).toBeUndefined();
    expect(out.numberOfRecordsUpdated).toBe(0);
    // int8 keeps all its digits in the text (JSON.parse alone would round it).
    expect(out.formattedRecords).toBe(
      '[{"i":42,"big":9223372036854775807,"n":"12.50","b":true,"z":null,"f":1.5,"bin":"AP8=",' +
        '"at":"2024-02-29 23:05:09.007","doc":"{\\"a\\": 1}"}]',
    );
  });

  it('answers typed records and columnMetadata for a SELECT without formatRecordsAs', async () => {
    const out = await execute({ sql: 'SELECT 7::int8 AS n, $$x$$::text AS t', includeResultMetadata: true });
    expect(out.records).toEqual([[{ longValue: 7 }, { stringValue: 'x' }]]);
    expect(out.columnMetadata?.map((c) => [c.label, c.typeName])).toEqual([
      ['n', 'int8'],
      ['t', 'text'],
    ]);
  });

  it('ignores formatRecordsAs for DML: INSERT ... RETURNING rows come in records, with the count', async () => {
    const out = await execute({
      sql: `INSERT INTO item (id, name, price, at, ok, ratio, data, small) VALUES
              (9007199254740993, 'a', 1.25, '2024-01-02 03:04:05.678+00', true, 0.5, '\\x01', 3),
              (2, 'b', NULL, NULL, false, NULL, NULL, NULL)
            RETURNING id, name, price, at, ok, ratio, data, small`,
      formatRecordsAs: 'JSON',
      includeResultMetadata: true,
      resultSetOptions: { longReturnType: 'STRING', decimalReturnType: 'STRING' },
    });
    expect(out.formattedRecords).toBeUndefined();
    expect(out.numberOfRecordsUpdated).toBe(2);
    expect(out.records).toEqual([
      [
        { stringValue: '9007199254740993' },
        { stringValue: 'a' },
        { stringValue: '1.25' },
        { stringValue: '2024-01-02 03:04:05.678' },
        { booleanValue: true },
        { doubleValue: 0.5 },
        { blobValue: new Uint8Array([1]) },
        { stringValue: '3' },
      ],
      [
        { stringValue: '2' },
        { stringValue: 'b' },
        { isNull: true },
        { isNull: true },
        { booleanValue: false },
        { isNull: true },
        { isNull: true },
        { isNull: true },
      ],
    ]);
    expect(out.columnMetadata?.map((c) => c.typeName)).toEqual([
      'int8',
      'text',
      'numeric',
      'timestamptz',
      'bool',
      'float8',
      'bytea',
      'int4',
    ]);
  });

  it('honours longReturnType LONG and decimalReturnType DOUBLE_OR_LONG in records', async () => {
    const out = await execute({
      sql: 'UPDATE item SET price = price WHERE id = 2 RETURNING id, 3.5::numeric AS d, 4::numeric AS w',
      resultSetOptions: { longReturnType: 'LONG', decimalReturnType: 'DOUBLE_OR_LONG' },
    });
    expect(out.records).toEqual([[{ longValue: 2 }, { doubleValue: 3.5 }, { longValue: 4 }]]);
    expect(out.columnMetadata).toBeUndefined();
    expect(out.numberOfRecordsUpdated).toBe(1);
  });

  it('reports numberOfRecordsUpdated for DML without RETURNING, and no records', async () => {
    const out = await execute({ sql: 'UPDATE item SET name = name', formatRecordsAs: 'JSON' });
    expect(out.numberOfRecordsUpdated).toBe(2);
    expect(out.records).toBeUndefined();
    expect(out.formattedRecords).toBeUndefined();
  });

  it('counts the calls per operation', async () => {
    const before = emulator.calls;
    const id = await begin();
    await execute({ sql: 'SELECT 1', transactionId: id });
    await commit(id);
    const after = emulator.calls;
    expect(after.BeginTransaction - before.BeginTransaction).toBe(1);
    expect(after.ExecuteStatement - before.ExecuteStatement).toBe(1);
    expect(after.CommitTransaction - before.CommitTransaction).toBe(1);
    expect(after.RollbackTransaction - before.RollbackTransaction).toBe(0);
  });

  it('the database of the request selects the database; an unknown one is a database error', async () => {
    const out = await execute({ sql: 'SELECT current_database() AS d', database: db.name, formatRecordsAs: 'JSON' });
    expect(out.formattedRecords).toBe(`[{"d":"${db.name}"}]`);
    const error = await failure(execute({ sql: 'SELECT 1', database: 'no_such_database' }));
    expect(error.name).toBe('DatabaseErrorException');
    expect(error.message).toMatch(/SQLState: 3D000$/);
  });

  it('refuses an ARN that is not a cluster or secret ARN', async () => {
    const error = await failure(
      sdk.send(new ExecuteStatementCommand({ resourceArn: 'arn:aws:s3:::bucket', secretArn: SECRET_ARN, sql: 'SELECT 1' })),
    );
    expect(error.name).toBe('BadRequestException');
  });
});

describe('parameters', () => {
  it('binds typed parameters and typeHints', async () => {
    const out = await execute({
      sql: `SELECT :s AS s, :l AS l, :d AS d, :b AS b, :n::int AS n, :blob AS blob, :date AS date, :time AS time,
              :ts AS ts, :dec AS dec, :uid AS uid, :doc AS doc, pg_typeof(:s)::text AS s_type, ':s' AS quoted`,
      formatRecordsAs: 'JSON',
      parameters: [
        { name: 's', value: { stringValue: "it's" } },
        { name: 'l', value: { longValue: 9_007_199_254_740_991 } },
        { name: 'd', value: { doubleValue: 2.5 } },
        { name: 'b', value: { booleanValue: false } },
        { name: 'n', value: { isNull: true } },
        { name: 'blob', value: { blobValue: new Uint8Array([0, 255]) } },
        { name: 'date', value: { stringValue: '2024-02-29' }, typeHint: 'DATE' },
        { name: 'time', value: { stringValue: '23:05:09.007' }, typeHint: 'TIME' },
        { name: 'ts', value: { stringValue: '2024-02-29 23:05:09.007' }, typeHint: 'TIMESTAMP' },
        { name: 'dec', value: { stringValue: '9007199254740993' }, typeHint: 'DECIMAL' },
        { name: 'uid', value: { stringValue: '0b9f4a4e-8c8f-4a2b-9a57-0a2b4c6d8e10' }, typeHint: 'UUID' },
        { name: 'doc', value: { stringValue: '{"a":[1]}' }, typeHint: 'JSON' },
      ],
    });
    expect(JSON.parse(out.formattedRecords!)).toEqual([
      {
        s: "it's",
        l: 9_007_199_254_740_991,
        d: 2.5,
        b: false,
        n: null,
        blob: 'AP8=',
        date: '2024-02-29',
        time: '23:05:09.007',
        ts: '2024-02-29 23:05:09.007',
        dec: '9007199254740993',
        uid: '0b9f4a4e-8c8f-4a2b-9a57-0a2b4c6d8e10',
        doc: '{"a":[1]}',
        s_type: 'character varying',
        quoted: ':s',
      },
    ]);
  });

  it('sends a stringValue as varchar: compared with a uuid column it fails without typeHint UUID', async () => {
    const error = await failure(
      execute({ sql: 'SELECT * FROM item WHERE uid = :u', parameters: [{ name: 'u', value: { stringValue: 'x' } }] }),
    );
    expect(error.name).toBe('DatabaseErrorException');
    expect(error.message).toMatch(/operator does not exist: uuid = character varying[\s\S]*SQLState: 42883$/);
  });

  it('refuses a placeholder without a parameter, and ignores a parameter the statement does not use', async () => {
    const missing = await failure(execute({ sql: 'SELECT :a AS a, :b AS b', parameters: [{ name: 'a', value: { longValue: 1 } }] }));
    expect(missing.name).toBe('BadRequestException');
    expect(missing.message).toMatch(/parameter: b/);
    const unused = await execute({
      sql: 'SELECT :a AS a',
      formatRecordsAs: 'JSON',
      parameters: [
        { name: 'a', value: { longValue: 1 } },
        { name: 'unused', value: { longValue: 2 } },
      ],
    });
    expect(unused.formattedRecords).toBe('[{"a":1}]');
  });

  it('refuses a value that does not match its typeHint format', async () => {
    const error = await failure(
      execute({ sql: 'SELECT :t AS t', parameters: [{ name: 't', value: { stringValue: '2024-02-29T23:05:09Z' }, typeHint: 'TIMESTAMP' }] }),
    );
    expect(error.name).toBe('BadRequestException');
  });
});

describe('statements and errors', () => {
  it('refuses a text of several statements and runs none of them', async () => {
    const error = await failure(execute({ sql: "UPDATE item SET name = 'x'; SELECT 1" }));
    expect(error.name).toBe('BadRequestException');
    expect(error.message).toMatch(/Multistatements/);
    expect((await db.pool.query(`SELECT count(*)::int AS n FROM item WHERE name = 'x'`)).rows[0].n).toBe(0);
    // A semicolon inside a string or a dollar-quoted body is not a second statement.
    const one = await execute({ sql: "SELECT ';' AS a, $$;$$ AS b;", formatRecordsAs: 'JSON' });
    expect(one.formattedRecords).toBe('[{"a":";","b":";"}]');
  });

  it('answers a database error as DatabaseErrorException ending with the SQLState', async () => {
    const error = await failure(execute({ sql: 'INSERT INTO item (id, name) VALUES (2, :n)', parameters: [{ name: 'n', value: { stringValue: 'b' } }] }));
    expect(error.name).toBe('DatabaseErrorException');
    expect(error.message).toMatch(/^ERROR: duplicate key value violates unique constraint "item_pkey"\n {2}Detail: Key \(id\)=\(2\) already exists\.; SQLState: 23505$/);
    const syntax = await failure(execute({ sql: 'SELEC 1' }));
    expect(syntax.message).toMatch(/Position: 1; SQLState: 42601$/);
  });

  it('refuses SQL longer than the limit (65,536 characters on the service)', async () => {
    const error = await failure(execute({ sql: `SELECT 1 -- ${'x'.repeat(2000)}` }));
    expect(error.name).toBe('BadRequestException');
    expect(error.message).toMatch(/at most 2000/);
  });

  it('refuses a response over the size limit (1 MiB on the service)', async () => {
    const error = await failure(execute({ sql: "SELECT repeat('x', 70000) AS big", formatRecordsAs: 'JSON' }));
    expect(error.name).toBe('BadRequestException');
    expect(error.message).toBe('Database response exceeded size limit');
  });

  it('keeps no session state between calls outside a transaction', async () => {
    await execute({ sql: "SET application_name = 'leaked'" });
    await execute({ sql: 'SELECT pg_advisory_lock(42)' });
    const out = await execute({
      sql: `SELECT current_setting('application_name') AS app,
              (SELECT count(*)::int FROM pg_locks WHERE locktype = 'advisory') AS locks`,
      formatRecordsAs: 'JSON',
    });
    expect(JSON.parse(out.formattedRecords!)).toEqual([{ app: 'rds-data-api-emulator', locks: 0 }]);
  });
});

describe('the call time limit (45 s on the service)', () => {
  it('cancels a statement that outlives it and answers StatementTimeoutException', async () => {
    const error = await failure(execute({ sql: "SELECT pg_sleep(5), 'slow-cancelled'" }));
    expect(error.name).toBe('StatementTimeoutException');
    const running = await db.pool.query(`SELECT count(*)::int AS n FROM pg_stat_activity WHERE query LIKE '%slow-cancelled%' AND pid <> pg_backend_pid()`);
    expect(running.rows[0].n).toBe(0);
  });

  it('with continueAfterTimeout the statement goes on and completes', async () => {
    const error = await failure(
      execute({ sql: "INSERT INTO item (id, name) SELECT 77, 'late' FROM pg_sleep(2.5)", continueAfterTimeout: true }),
    );
    expect(error.name).toBe('StatementTimeoutException');
    expect((await db.pool.query('SELECT count(*)::int AS n FROM item WHERE id = 77')).rows[0].n).toBe(0);
    await vi.waitFor(
      async () => expect((await db.pool.query('SELECT count(*)::int AS n FROM item WHERE id = 77')).rows[0].n).toBe(1),
      { timeout: 5000, interval: 100 },
    );
  });
});

describe('transactions', () => {
  it('commits the statements of a transaction together, invisible before the commit', async () => {
    const id = await begin();
    await execute({ sql: "INSERT INTO item (id, name) VALUES (10, 'tx')", transactionId: id });
    expect((await db.pool.query('SELECT count(*)::int AS n FROM item WHERE id = 10')).rows[0].n).toBe(0);
    expect((await commit(id)).transactionStatus).toBe('Transaction Committed');
    expect((await db.pool.query('SELECT count(*)::int AS n FROM item WHERE id = 10')).rows[0].n).toBe(1);
  });

  it('keeps session state within the transaction and rolls back on RollbackTransaction', async () => {
    const id = await begin();
    await execute({ sql: "SET LOCAL lock_timeout = '1234ms'", transactionId: id });
    await execute({ sql: "INSERT INTO item (id, name) VALUES (11, 'gone')", transactionId: id });
    const out = await execute({ sql: "SELECT current_setting('lock_timeout') AS t", transactionId: id, formatRecordsAs: 'JSON' });
    expect(out.formattedRecords).toBe('[{"t":"1234ms"}]');
    expect((await rollback(id)).transactionStatus).toBe('Rollback Complete');
    expect((await db.pool.query('SELECT count(*)::int AS n FROM item WHERE id = 11')).rows[0].n).toBe(0);
  });

  it('an error aborts the transaction: later calls answer that it is not found', async () => {
    const id = await begin();
    await execute({ sql: "INSERT INTO item (id, name) VALUES (12, 'aborted')", transactionId: id });
    const error = await failure(execute({ sql: 'SELECT 1/0', transactionId: id }));
    expect(error.message).toMatch(/SQLState: 22012$/);
    const after = await failure(commit(id));
    expect(after.name).toBe('BadRequestException');
    expect(after.message).toMatch(new RegExp(`^Transaction ${id.replace(/[+/=]/g, '\\$&')} is not found`));
    expect((await db.pool.query('SELECT count(*)::int AS n FROM item WHERE id = 12')).rows[0].n).toBe(0);
  });

  it('a commit the database refuses is a DatabaseErrorException, and the transaction is gone', async () => {
    await db.pool.query('CREATE TABLE deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED)');
    const id = await begin();
    await execute({ sql: 'INSERT INTO deferred VALUES (1), (1)', transactionId: id });
    const error = await failure(commit(id));
    expect(error.name).toBe('DatabaseErrorException');
    expect(error.message).toMatch(/SQLState: 23505$/);
    expect((await failure(rollback(id))).message).toMatch(/is not found/);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM deferred')).rows[0].n).toBe(0);
  });

  it('rolls back a transaction left without a call for the idle limit (3 minutes on the service)', async () => {
    const id = await begin();
    await execute({ sql: "INSERT INTO item (id, name) VALUES (13, 'idle')", transactionId: id });
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const error = await failure(execute({ sql: 'SELECT 1', transactionId: id }));
    expect(error.name).toBe('BadRequestException');
    expect(error.message).toMatch(/is not found/);
    expect((await db.pool.query('SELECT count(*)::int AS n FROM item WHERE id = 13')).rows[0].n).toBe(0);
  });

  it('a call inside the idle limit keeps the transaction alive', async () => {
    const id = await begin();
    for (let i = 0; i < 3; i++) {
      await new Promise((resolve) => setTimeout(resolve, 400));
      await execute({ sql: 'SELECT 1', transactionId: id });
    }
    await commit(id);
  });

  it('a timed-out statement inside a transaction aborts it', async () => {
    const id = await begin();
    const error = await failure(execute({ sql: 'SELECT pg_sleep(5)', transactionId: id }));
    expect(error.name).toBe('StatementTimeoutException');
    expect((await failure(commit(id))).message).toMatch(/is not found/);
  });
});

describe('faults and latency', () => {
  it.each([
    ['DatabaseResumingException', 400],
    ['ThrottlingException', 400],
    ['InternalServerErrorException', 500],
  ])('answers an injected %s the next N calls, then works again', async (name, status) => {
    emulator.injectFault({ error: name, operation: 'ExecuteStatement', times: 2 });
    for (let i = 0; i < 2; i++) {
      const error = (await failure(execute({ sql: 'SELECT 1' }))) as Error & { $metadata: { httpStatusCode: number } };
      expect(error.name).toBe(name);
      expect(error.$metadata.httpStatusCode).toBe(status);
    }
    await execute({ sql: 'SELECT 1' });
  });

  it('filters a fault by operation and SQL text, and a faulted call changes nothing', async () => {
    emulator.injectFault({ error: 'DatabaseResumingException', sqlIncludes: 'faulted-here', message: 'paused' });
    await execute({ sql: 'SELECT 1' });
    const id = await begin();
    const error = await failure(execute({ sql: "INSERT INTO item (id, name) VALUES (20, 'faulted-here')", transactionId: id }));
    expect(error.name).toBe('DatabaseResumingException');
    expect(error.message).toBe('paused');
    // The transaction survives a faulted call.
    await execute({ sql: "INSERT INTO item (id, name) VALUES (20, 'faulted-here')", transactionId: id });
    await commit(id);
    emulator.injectFault({ error: 'ThrottlingException', operation: 'BeginTransaction' });
    await execute({ sql: 'SELECT 1' });
    expect((await failure(begin())).name).toBe('ThrottlingException');
  });

  it('adds the configured latency to every call', async () => {
    emulator.setLatency(150);
    const started = Date.now();
    await execute({ sql: 'SELECT 1' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(150);
    emulator.setLatency(0);
  });

  it('the environment points an SDK client at the emulator', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, emulator.environment);
    try {
      const client = new RDSDataClient({ maxAttempts: 1 });
      const out = await client.send(
        new ExecuteStatementCommand({ resourceArn: RESOURCE_ARN, secretArn: SECRET_ARN, sql: 'SELECT 5 AS five', formatRecordsAs: 'JSON' }),
      );
      expect(out.formattedRecords).toBe('[{"five":5}]');
      client.destroy();
    } finally {
      process.env = saved;
    }
  });
});
