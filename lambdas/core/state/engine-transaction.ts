import { EngineTimeoutError } from '../errors.ts';
import { DEFAULT_SETTINGS, type UpgradeSettings } from '../settings.ts';
import {
  QUERY_CANCELED,
  SqlError,
  type SqlClient,
  type SqlParams,
  type SqlResult,
  type SqlRow,
  type SqlSession,
} from '../sql/sql-client.ts';

/**
 * The limits of the engine's own transactions. Outside a transaction no session state survives between RDS Data API
 * calls, so every engine transaction sets them for itself in its first statement (`set_config(name, value, true)`,
 * i.e. SET LOCAL): no extra call where that statement does work anyway (the lease renewal of a step or batch), one
 * extra call otherwise.
 */
export interface EngineBounds {
  /** `statement_timeout` of the engine's statements outside batches. */
  readonly statementTimeoutMs: number;
  /** `idle_in_transaction_session_timeout`: a transaction whose holder froze is ended by the server, locks and all. */
  readonly idleInTransactionTimeoutMs: number;
  /** `lock_timeout`: how long an engine statement may queue behind a lock (the lease row's, above all). */
  readonly lockTimeoutMs: number;
}

export function engineBounds(
  settings: Pick<UpgradeSettings, 'engineStatementTimeoutMs' | 'idleInTransactionTimeoutMs' | 'lockTimeoutMs'>,
): EngineBounds {
  return {
    statementTimeoutMs: settings.engineStatementTimeoutMs,
    idleInTransactionTimeoutMs: settings.idleInTransactionTimeoutMs,
    lockTimeoutMs: settings.lockTimeoutMs,
  };
}

export const DEFAULT_BOUNDS: EngineBounds = engineBounds(DEFAULT_SETTINGS);

/** What one transaction sets. `statementTimeoutMs` undefined leaves statement_timeout alone (a step's own DDL). */
export interface TransactionLimits {
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs: number | undefined;
  readonly idleInTransactionTimeoutMs: number;
  /** READ ONLY: any write, in the statement or in a function it calls, fails with SQLSTATE 25006. */
  readonly readOnly?: boolean;
}

/** Select-list items that set `limits` for the rest of the current transaction, with their parameters. */
export function limitSettings(limits: TransactionLimits): { sql: string; params: SqlParams } {
  const items = [
    `set_config('lock_timeout', :limit_lock_ms, true) AS lock_timeout`,
    `set_config('idle_in_transaction_session_timeout', :limit_idle_ms, true) AS idle_timeout`,
  ];
  const params: Record<string, string> = {
    limit_lock_ms: String(limits.lockTimeoutMs),
    limit_idle_ms: String(limits.idleInTransactionTimeoutMs),
  };
  if (limits.statementTimeoutMs !== undefined) {
    items.push(`set_config('statement_timeout', :limit_statement_ms, true) AS statement_timeout`);
    params.limit_statement_ms = String(limits.statementTimeoutMs);
  }
  // Turning read-only ON is allowed at any point of a transaction (only turning it off after the first query is not).
  if (limits.readOnly) items.push(`set_config('transaction_read_only', 'on', true) AS read_only`);
  return { sql: items.join(', '), params };
}

/** A session inside an engine transaction bounded by `statementTimeoutMs`. */
export interface BoundedSession extends SqlSession {
  readonly statementTimeoutMs: number;
  /** `query`, naming what the statement is for if it runs past the timeout (the transaction's purpose otherwise). */
  queryAs<Row extends SqlRow = SqlRow>(what: string, sql: string, params?: SqlParams): Promise<SqlResult<Row>>;
}

/** A session inside a READ ONLY engine transaction: the only kind a pending query is given to run in. */
export interface ReadOnlySession extends BoundedSession {
  readonly readOnly: true;
}

/**
 * Runs `work` in one transaction whose first statement sets `bounds`. A statement that runs past the statement
 * timeout fails as `EngineTimeoutError` naming `what` (or the `queryAs` label).
 */
export async function boundedTransaction<T>(
  client: SqlClient,
  bounds: EngineBounds,
  what: string,
  work: (tx: BoundedSession) => Promise<T>,
): Promise<T> {
  return client.transaction(async (tx) => {
    await setLimits(tx, { ...bounds, readOnly: false });
    return work(boundSession(tx, bounds.statementTimeoutMs, what));
  });
}

/** `boundedTransaction`, READ ONLY: nothing `work` runs can write. */
export async function readTransaction<T>(
  client: SqlClient,
  bounds: EngineBounds,
  what: string,
  work: (tx: ReadOnlySession) => Promise<T>,
): Promise<T> {
  return client.transaction(async (tx) => {
    await setLimits(tx, { ...bounds, readOnly: true });
    return work({ ...boundSession(tx, bounds.statementTimeoutMs, what), readOnly: true });
  });
}

async function setLimits(tx: SqlSession, limits: TransactionLimits): Promise<void> {
  const settings = limitSettings(limits);
  await tx.query(`SELECT ${settings.sql}`, settings.params);
}

/** Wraps a session of a transaction whose limits are already set, turning its statement timeouts into typed errors. */
export function boundSession(tx: SqlSession, statementTimeoutMs: number, what: string): BoundedSession {
  const queryAs = async <Row extends SqlRow = SqlRow>(label: string, sql: string, params?: SqlParams) => {
    const started = performance.now();
    try {
      return await tx.query<Row>(sql, params);
    } catch (error) {
      // SQLSTATE 57014 is also an administrator's pg_cancel_backend: only a statement that ran for the whole timeout
      // timed out (the client's measure includes the round trip, so it is never shorter than the server's).
      if (error instanceof SqlError && error.sqlState === QUERY_CANCELED && performance.now() - started >= statementTimeoutMs) {
        throw new EngineTimeoutError(label, statementTimeoutMs, { cause: error });
      }
      throw error;
    }
  };
  return {
    statementTimeoutMs,
    queryAs,
    query: (sql, params) => queryAs(what, sql, params),
  };
}
