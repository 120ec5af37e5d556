import { BadRequestException, DatabaseErrorException, ExecuteStatementCommand, RDSDataClient } from '@aws-sdk/client-rds-data';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DataApiSqlClient } from '../lambdas/core/sql/data-api-client.ts';
import { REDACTED, redactRowData } from '../lambdas/core/sql/redact-row-data.ts';
import { SqlError } from '../lambdas/core/sql/sql-client.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

/**
 * Row values never reach an error message (and so a Step Functions Cause, a log line or the history table),
 * whichever client produced it; the constraint and column names stay.
 */
async function failure(work: Promise<unknown>): Promise<SqlError> {
  const error = await work.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(SqlError);
  return error as SqlError;
}

function expectNoValue(error: SqlError, ...values: string[]): void {
  for (const value of values) {
    expect(error.message).not.toContain(value);
    expect(error.stack ?? '').not.toContain(value);
  }
}

describe('PgSqlClient on the real PostgreSQL', () => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await createTestDatabase();
    await db.pool.query(`
      CREATE TABLE accounts (
        id int PRIMARY KEY,
        owner_id text NOT NULL UNIQUE,
        balance int NOT NULL CONSTRAINT balance_not_negative CHECK (balance >= 0),
        note text
      );
      INSERT INTO accounts VALUES (1, 'alice@example.com', 10, 'secret note');
      CREATE TABLE transfers (id int PRIMARY KEY, owner_id text REFERENCES accounts (owner_id));`);
  });
  afterAll(async () => {
    await db.drop();
  });

  it('a unique violation keeps the constraint and the column, not the value', async () => {
    const error = await failure(db.client.query(`INSERT INTO accounts VALUES (2, 'alice@example.com', 5, NULL)`));
    expect(error.sqlState).toBe('23505');
    expect(error.message).toBe(
      `duplicate key value violates unique constraint "accounts_owner_id_key"\n  Detail: Key (owner_id)=(${REDACTED}) already exists.`,
    );
    expectNoValue(error, 'alice@example.com');
  });

  it('a check violation keeps the constraint, not the failing row', async () => {
    const error = await failure(db.client.query(`UPDATE accounts SET balance = -3 WHERE id = 1`));
    expect(error.sqlState).toBe('23514');
    expect(error.message).toBe(
      `new row for relation "accounts" violates check constraint "balance_not_negative"\n  Detail: Failing row contains (${REDACTED}).`,
    );
    expectNoValue(error, 'alice@example.com', 'secret note', '-3');
  });

  it('a foreign key violation and a value that does not cast lose their values too', async () => {
    const fk = await failure(db.client.query(`INSERT INTO transfers VALUES (1, 'mallory@example.com')`));
    expect(fk.message).toContain(`Key (owner_id)=(${REDACTED}) is not present in table "accounts".`);
    expectNoValue(fk, 'mallory@example.com');
    const cast = await failure(db.client.query(`UPDATE accounts SET balance = note::int`));
    expect(cast.sqlState).toBe('22P02');
    expect(cast.message).toBe(`invalid input syntax for type integer: "${REDACTED}"`);
    expectNoValue(cast, 'secret note');
  });

  it('any quoted value or byte sequence of a data exception (SQLSTATE class 22)', async () => {
    await db.pool.query(`UPDATE accounts SET note = '2020-13-45' WHERE id = 1`);
    const date = await failure(db.client.query(`SELECT note::date FROM accounts`));
    expect(date.sqlState).toBe('22008');
    expect(date.message).toBe(`date/time field value out of range: "${REDACTED}"`);
    const bytes = await failure(db.client.query(`SELECT convert_from(decode(:hex, 'hex'), 'UTF8')`, { hex: 'e941' }));
    expect(bytes.sqlState).toBe('22021');
    expect(bytes.message).toBe('invalid byte sequence for encoding "UTF8": 0x…');
    await db.pool.query(`UPDATE accounts SET note = 'secret note' WHERE id = 1`);
  });

  it('inside a transaction as well', async () => {
    const error = await failure(db.client.transaction((tx) => tx.query(`INSERT INTO accounts VALUES (3, 'alice@example.com', 1, NULL)`)));
    expectNoValue(error, 'alice@example.com');
    expect(error.message).toContain('accounts_owner_id_key');
  });
});

describe('DataApiSqlClient (the Data API folds the detail into its message)', () => {
  const rds = mockClient(RDSDataClient);
  let client: DataApiSqlClient;
  beforeEach(() => {
    rds.reset();
    client = new DataApiSqlClient({
      resourceArn: 'arn:aws:rds:eu-west-1:123456789012:cluster:emc',
      secretArn: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:emc-abc123',
      database: 'app',
      client: new RDSDataClient({ region: 'eu-west-1', credentials: { accessKeyId: 'test', secretAccessKey: 'test' } }),
      retry: { attempts: 1, baseDelayMs: 1 },
    });
  });

  // The message shape: PostgreSQL's fields joined as "ERROR: msg\n  Detail: ...; SQLState: XXXXX" (as pinned by
  // sbalmt/ez4's aws-aurora client tests against Aurora; the Data API reference says only that errors carry the SQLState).
  it.each([
    {
      what: 'unique violation',
      message:
        'ERROR: duplicate key value violates unique constraint "accounts_owner_id_key"\n  Detail: Key (owner_id)=(alice@example.com) already exists.; SQLState: 23505',
      expected: `ERROR: duplicate key value violates unique constraint "accounts_owner_id_key"\n  Detail: Key (owner_id)=(${REDACTED}) already exists.; SQLState: 23505`,
      sqlState: '23505',
      values: ['alice@example.com'],
    },
    {
      what: 'composite key whose value holds the continuation words and a fake SQLState',
      message:
        'ERROR: duplicate key value violates unique constraint "k"\n  Detail: Key (tenant, lower(email))=(7, x; SQLState: 00000) already exists.; SQLState: 23505',
      expected: `ERROR: duplicate key value violates unique constraint "k"\n  Detail: Key (tenant, lower(email))=(${REDACTED}) already exists.; SQLState: 23505`,
      sqlState: '23505',
      values: ['x; SQLState: 00000'],
    },
    {
      what: 'check violation',
      message:
        'ERROR: new row for relation "accounts" violates check constraint "balance_not_negative"\n  Detail: Failing row contains (1, alice@example.com, -3, secret\nnote).; SQLState: 23514',
      expected: `ERROR: new row for relation "accounts" violates check constraint "balance_not_negative"\n  Detail: Failing row contains (${REDACTED}).; SQLState: 23514`,
      sqlState: '23514',
      values: ['alice@example.com', 'secret', 'note)'],
    },
    {
      what: 'exclusion conflict (two keys)',
      message:
        'ERROR: conflicting key value violates exclusion constraint "no_overlap"\n  Detail: Key (room, during)=(1, [10,20)) conflicts with existing key (room, during)=(1, [15,25)).; SQLState: 23P01',
      expected: `ERROR: conflicting key value violates exclusion constraint "no_overlap"\n  Detail: Key (room, during)=(${REDACTED}) conflicts with existing key (room, during)=(${REDACTED}).; SQLState: 23P01`,
      sqlState: '23P01',
      values: ['[10,20)', '[15,25)'],
    },
  ])('$what', async ({ message, expected, sqlState, values }) => {
    rds.on(ExecuteStatementCommand).rejects(new DatabaseErrorException({ message, $metadata: {} }));
    const error = await failure(client.query('UPDATE accounts SET balance = balance - 13'));
    // The client gives PostgreSQL's message, as node-postgres does: the SQLSTATE is carried apart.
    expect(error.message).toBe(expected.replace(/^ERROR: /, '').replace(/; SQLState: [0-9A-Z]{5}$/, ''));
    expect(error.sqlState).toBe(sqlState);
    expectNoValue(error, ...values);
  });

  it('older endpoints answer BadRequestException with the same text', async () => {
    rds.on(ExecuteStatementCommand).rejects(
      new BadRequestException({
        message: 'ERROR: invalid input syntax for type integer: "secret "quoted" note"; SQLState: 22P02',
        $metadata: {},
      }),
    );
    const error = await failure(client.query('UPDATE accounts SET balance = note::int'));
    expect(error.message).toBe(`invalid input syntax for type integer: "${REDACTED}"`);
    expect(error.sqlState).toBe('22P02');
  });
});

describe('redactRowData', () => {
  it('leaves messages without row data unchanged', () => {
    for (const message of [
      'relation "t" does not exist',
      'ERROR: canceling statement due to lock timeout; SQLState: 55P03',
      'null value in column "owner_id" of relation "accounts" violates not-null constraint',
    ]) {
      expect(redactRowData(message)).toBe(message);
    }
  });

  it('cuts a key value with no known continuation to the end of its line', () => {
    expect(redactRowData('Detail: Key (id)=(42) something new.')).toBe(`Detail: Key (id)=(${REDACTED})`);
  });
});
