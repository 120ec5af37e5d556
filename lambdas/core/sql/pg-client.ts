import pg from 'pg';
import { toPositional } from './named-parameters.ts';
import { ensureParserLoaded } from './parser.ts';
import { redactRowData } from './redact-row-data.ts';
import {
  SqlError,
  type QueryOptions,
  type SqlClient,
  type SqlParams,
  type SqlResult,
  type SqlRow,
  type SqlSession,
  type SqlValue,
} from './sql-client.ts';

/** `SqlClient` over node-postgres: local runs, tests and `--database-url`. */
export class PgSqlClient implements SqlClient {
  private readonly pool: pg.Pool;

  constructor(connectionString: string, options: { applicationName?: string } = {}) {
    this.pool = new pg.Pool({
      connectionString,
      max: 2,
      // An unreachable host fails in seconds instead of waiting for the operating system's TCP timeout.
      connectionTimeoutMillis: 10_000,
      application_name: options.applicationName ?? 'emc-upgrade',
    });
    // An idle connection dropped by the server must not crash the process; the next query gets a new one.
    this.pool.on('error', () => {});
  }

  async query<Row extends SqlRow = SqlRow>(sql: string, params?: SqlParams, options?: QueryOptions): Promise<SqlResult<Row>> {
    await ensureParserLoaded();
    if (options?.statementTimeoutMs === undefined) return run<Row>(this.pool, sql, params);
    const connection = await this.pool.connect().catch((error: unknown) => {
      throw toSqlError(error);
    });
    let broken: Error | undefined;
    // As in `transaction`: a checked-out connection the server drops must fail its query, not the process.
    const onError = (error: Error) => {
      broken = error;
    };
    connection.on('error', onError);
    try {
      await run(connection, `SELECT set_config('statement_timeout', :ms, false)`, { ms: String(options.statementTimeoutMs) });
      return await run<Row>(connection, sql, params);
    } finally {
      // A session whose timeout cannot be reset must not serve another statement with it.
      await connection.query('RESET statement_timeout').catch((error: unknown) => {
        broken = error instanceof Error ? error : new Error(String(error));
      });
      connection.removeListener('error', onError);
      connection.release(broken);
    }
  }

  async transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T> {
    await ensureParserLoaded();
    // A connection that cannot be opened fails as in `query` (a SqlError), whichever of the two the caller used.
    const connection = await this.pool.connect().catch((error: unknown) => {
      throw toSqlError(error);
    });
    let broken: unknown;
    // pg-pool removes its 'error' listener from a checked-out connection: without this one, a connection the server
    // drops mid-transaction raises an uncaught exception that kills the process. The failing query reports it.
    const onError = (error: Error) => {
      broken = error;
    };
    connection.on('error', onError);
    try {
      await run(connection, 'BEGIN');
      const result = await work({ query: (sql, params) => run(connection, sql, params) });
      await run(connection, 'COMMIT');
      return result;
    } catch (error) {
      try {
        await connection.query('ROLLBACK');
      } catch (rollbackError) {
        broken = rollbackError;
      }
      throw error;
    } finally {
      connection.removeListener('error', onError);
      // A connection whose ROLLBACK failed (or that errored) is in an unknown state: destroy it instead of reusing it.
      connection.release(broken instanceof Error ? broken : undefined);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}

async function run<Row extends SqlRow>(
  executor: pg.Pool | pg.PoolClient,
  sql: string,
  params?: SqlParams,
): Promise<SqlResult<Row>> {
  const { text, values } = toPositional(sql, params);
  try {
    const result = await executor.query<Row>(text, values.map(toPgValue));
    return { rows: result.rows, rowCount: result.rowCount ?? result.rows.length };
  } catch (error) {
    throw toSqlError(error);
  }
}

function toSqlError(error: unknown): SqlError {
  const { code: sqlState, detail } = error as { code?: unknown; detail?: unknown };
  const validSqlState = typeof sqlState === 'string' && /^[0-9A-Z]{5}$/.test(sqlState) ? sqlState : undefined;
  // The detail names the columns of a violated key, as the Data API's message does; its values are redacted.
  const message = `${(error as Error).message}${typeof detail === 'string' && detail ? `\n  Detail: ${detail}` : ''}`;
  return new SqlError(redactRowData(message, validSqlState), validSqlState, { cause: error });
}

function toPgValue(value: SqlValue): unknown {
  if (value === null || typeof value !== 'object' || value instanceof Date || value instanceof Uint8Array) {
    return typeof value === 'bigint' ? value.toString() : value;
  }
  if ('json' in value) return JSON.stringify(value.json);
  return value.uuid;
}
