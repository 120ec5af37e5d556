import type { QueryOptions, SqlClient, SqlParams, SqlResult, SqlRow, SqlSession } from '../../lambdas/core/sql/sql-client.ts';

/**
 * A `SqlClient` wrapper that counts every statement the engine sends, inside and outside transactions, and can drop
 * the connection for real at one of them: the backend that would run (or just ran) statement `k` terminates itself
 * (`pg_terminate_backend(pg_backend_pid())`), so the server process exits, the socket closes, an open transaction
 * is rolled back by the server and the engine sees the genuine error node-postgres raises (SQLSTATE 57P01), exactly
 * as in a crash of the connection. Nothing is simulated in the client: the engine's own error handling runs.
 *
 * - `before`: statement k is never executed; the connection that would have run it dies instead.
 * - `after`: statement k executes, then its connection dies before anything else is sent on it. Inside a
 *   transaction that is the crash between a statement (a batch's writes, the version update, ...) and its COMMIT;
 *   for an autocommit statement it is "committed, but the reply was lost".
 *
 * Statements after the kill pass through (the engine's failure path writes its history row on a new connection).
 */
export type KillMode = 'before' | 'after';

export type KillPoint =
  | {
      /** 1-based number of the statement, counted over the whole run. */
      readonly at: number;
      readonly mode: KillMode;
    }
  | {
      /** The first statement this holds for (called once per statement, in order). */
      readonly where: (statement: SentStatement) => boolean;
      readonly mode: KillMode;
    };

export interface SentStatement {
  readonly n: number;
  /** The first line of the statement, squeezed: enough to tell statements apart in a report. */
  readonly sql: string;
  readonly inTransaction: boolean;
  /** Number of the transaction the statement ran in (1, 2, ... over the run); undefined outside transactions. */
  readonly transaction: number | undefined;
  /** What the run was doing, as set by `label` (start, expand, migrate, contract, finish). */
  readonly label: string;
}

const TERMINATE_SELF = 'SELECT pg_terminate_backend(pg_backend_pid())';

export class FaultInjectingSqlClient implements SqlClient {
  /** Every statement sent, in order (the kill's own statement is not counted). */
  readonly sent: SentStatement[] = [];
  /**
   * The statement boundaries a kill in `mode` reaches that a kill in the other mode does not: `before` every
   * statement; `after` only the last statement of each transaction (the gap before its COMMIT) and every autocommit
   * statement (executed, reply lost). "After" any other statement of a transaction is the boundary "before" the next.
   */
  static boundaries(sent: readonly SentStatement[], mode: KillMode): SentStatement[] {
    if (mode === 'before') return [...sent];
    return sent.filter((s, i) => s.transaction === undefined || sent[i + 1]?.transaction !== s.transaction);
  }

  /** The statement the connection died at, once it did. */
  killedAt: SentStatement | undefined;
  /** Set by the caller to tag statements with the phase being run. */
  label = '';
  private transactions = 0;

  constructor(
    private readonly inner: SqlClient,
    private readonly killPoint?: KillPoint,
  ) {}

  get count(): number {
    return this.sent.length;
  }

  async query<Row extends SqlRow = SqlRow>(sql: string, params?: SqlParams, options?: QueryOptions): Promise<SqlResult<Row>> {
    const statement = this.record(sql, undefined);
    if (this.hits(statement, 'before')) await this.kill(statement, (s) => this.inner.query(s));
    const result = await this.inner.query<Row>(sql, params, options);
    // Outside a transaction the pool may hand the kill to another idle connection: what matters is that the caller
    // never learns that the committed statement succeeded, as when the reply is lost.
    if (this.hits(statement, 'after')) await this.kill(statement, (s) => this.inner.query(s));
    return result;
  }

  transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T> {
    const transaction = ++this.transactions;
    return this.inner.transaction((tx) =>
      work({
        query: async <Row extends SqlRow = SqlRow>(sql: string, params?: SqlParams) => {
          const statement = this.record(sql, transaction);
          if (this.hits(statement, 'before')) await this.kill(statement, (s) => tx.query(s));
          const result = await tx.query<Row>(sql, params);
          if (this.hits(statement, 'after')) await this.kill(statement, (s) => tx.query(s));
          return result;
        },
      }),
    );
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private record(sql: string, transaction: number | undefined): SentStatement {
    const statement = {
      n: this.sent.length + 1,
      sql: sql.trim().split('\n')[0]!.replace(/\s+/g, ' ').slice(0, 100),
      inTransaction: transaction !== undefined,
      transaction,
      label: this.label,
    };
    this.sent.push(statement);
    return statement;
  }

  private hits(statement: SentStatement, mode: KillMode): boolean {
    const point = this.killPoint;
    if (point === undefined || point.mode !== mode || this.killedAt !== undefined) return false;
    return 'at' in point ? point.at === statement.n : point.where(statement);
  }

  /** Terminates the backend `run` sends to; rethrows the genuine connection error the client raises. */
  private async kill(statement: SentStatement, run: (sql: string) => Promise<unknown>): Promise<never> {
    this.killedAt = statement;
    await run(TERMINATE_SELF);
    throw new Error(`fault injection: the backend survived pg_terminate_backend at statement ${statement.n}`);
  }
}
