import type { QueryOptions, SqlClient, SqlParams, SqlResult, SqlRow, SqlSession } from '../../lambdas/core/sql/sql-client.ts';

/** A statement about to be sent, as the hook of `HookedSqlClient` sees it. */
export interface StatementAboutToRun {
  readonly sql: string;
  readonly inTransaction: boolean;
  /** 0 for the first statement of a transaction: its transaction holds no lock yet. */
  readonly indexInTransaction: number;
  /** The statement sent before this one, in or out of a transaction. */
  readonly previous: string | undefined;
}

/**
 * A `SqlClient` that calls `hook` before sending each statement and waits for it: the test does something between
 * two statements of the engine (takes the lease over, freezes the run inside a transaction, ...).
 */
export class HookedSqlClient implements SqlClient {
  private previous: string | undefined;

  constructor(
    private readonly inner: SqlClient,
    private readonly hook: (statement: StatementAboutToRun) => Promise<void> | void,
  ) {}

  async query<Row extends SqlRow = SqlRow>(sql: string, params?: SqlParams, options?: QueryOptions): Promise<SqlResult<Row>> {
    await this.fire(sql, false, 0);
    return this.inner.query<Row>(sql, params, options);
  }

  transaction<T>(work: (tx: SqlSession) => Promise<T>): Promise<T> {
    return this.inner.transaction((tx) => {
      let index = 0;
      return work({
        query: async <Row extends SqlRow = SqlRow>(sql: string, params?: SqlParams) => {
          await this.fire(sql, true, index++);
          return tx.query<Row>(sql, params);
        },
      });
    });
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private async fire(sql: string, inTransaction: boolean, indexInTransaction: number): Promise<void> {
    const previous = this.previous;
    this.previous = sql;
    await this.hook({ sql, inTransaction, indexInTransaction, previous });
  }
}
