import pg from 'pg';
import { DataApiError } from './errors.ts';
import type { BoundStatement } from './parameters.ts';
import { builtinTypeNames, unknownTypeOids, type RawResult } from './results.ts';

/** Every value stays PostgreSQL's text: the emulator shapes it per the Data API's own type mapping. */
const RAW_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

/**
 * Connections to the PostgreSQL server behind the emulator, pooled per database.
 *
 * Outside a transaction each call takes a connection for itself alone, and every connection is reset
 * (`DISCARD ALL`: settings, advisory locks, temporary tables, prepared statements) before another call gets it: the
 * Data API keeps no session state between calls outside a transaction (Aurora User Guide, Data API limitations).
 * A connection that cannot be reset (a caller sent BEGIN outside a transaction) is closed instead.
 */
export class Database {
  private readonly pools = new Map<string, pg.Pool>();

  constructor(private readonly postgresUrl: string) {}

  /**
   * `database`: "The name of the database" (reference, ExecuteStatement); absent, the database of the URL.
   * The session time zone is UTC, Aurora PostgreSQL's default, so TIMESTAMP parameters without a zone mean UTC.
   */
  async connect(database: string | undefined): Promise<pg.PoolClient> {
    const url = new URL(this.postgresUrl);
    if (database) url.pathname = `/${encodeURIComponent(database)}`;
    try {
      return await this.pool(url.toString()).connect();
    } catch (error) {
      throw toDatabaseError(error);
    }
  }

  /** Gives the connection back, reset, or closes it when it cannot be reset. */
  async release(client: pg.PoolClient): Promise<void> {
    try {
      await client.query('DISCARD ALL');
      client.release();
    } catch (error) {
      client.release(error instanceof Error ? error : new Error(String(error)));
    }
  }

  async close(): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.end()));
    this.pools.clear();
  }

  private pool(url: string): pg.Pool {
    let pool = this.pools.get(url);
    if (!pool) {
      pool = new pg.Pool({
        connectionString: url,
        max: 20,
        types: RAW_TYPES,
        options: '-c TimeZone=UTC',
        application_name: 'rds-data-api-emulator',
      });
      // An idle connection the server drops must not crash the process; the next call gets a new one.
      pool.on('error', () => {});
      this.pools.set(url, pool);
    }
    return pool;
  }

  /**
   * Runs one statement, bounded by `timeoutMs`: "By default, the Data API cancels an operation and returns a timeout
   * error if the operation doesn't finish processing within 45 seconds ... you can specify the continueAfterTimeout
   * parameter ... Your application still receives the timeout error. However, the operation continues running and
   * isn't canceled" (Aurora User Guide, Controlling Data API timeout behavior). `whenDetached` is told when a
   * statement left running finishes.
   */
  async run(
    client: pg.PoolClient,
    statement: BoundStatement,
    options: { timeoutMs: number; continueAfterTimeout: boolean; whenDetached?: (done: Promise<unknown>) => void },
  ): Promise<{ result: RawResult; typeNames: ReadonlyMap<number, string> }> {
    const running = client.query<(string | null)[]>({ text: statement.text, values: statement.values, rowMode: 'array' });
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), options.timeoutMs);
    });
    const outcome = await Promise.race([
      running.then(
        (result) => ({ result }),
        (error: unknown) => ({ error }),
      ),
      timedOut,
    ]);
    clearTimeout(timer);
    if (outcome === 'timeout') {
      const processId = (client as unknown as { processID: number }).processID;
      if (options.continueAfterTimeout) {
        options.whenDetached?.(running.catch(() => {}));
      } else {
        await this.cancel(processId);
        await running.catch(() => {});
      }
      throw new DataApiError('StatementTimeoutException', 'Request timed out', { dbConnectionId: processId });
    }
    if ('error' in outcome) throw toDatabaseError(outcome.error);
    const typeNames = builtinTypeNames();
    const unknown = unknownTypeOids(outcome.result);
    if (unknown.length > 0) {
      const names = await client.query<[string, string]>({
        text: 'SELECT oid::text, typname::text FROM pg_type WHERE oid = ANY($1::oid[])',
        values: [unknown],
        rowMode: 'array',
      });
      for (const [oid, name] of names.rows) typeNames.set(Number(oid), name);
    }
    return { result: outcome.result, typeNames };
  }

  private async cancel(processId: number): Promise<void> {
    const canceller = new pg.Client({ connectionString: this.postgresUrl });
    canceller.on('error', () => {});
    try {
      await canceller.connect();
      await canceller.query('SELECT pg_cancel_backend($1)', [processId]);
    } finally {
      await canceller.end().catch(() => {});
    }
  }
}

/**
 * A database error as the Data API reports it: DatabaseErrorException, "There is an error in the call or in a SQL
 * statement" (reference, ExecuteStatement errors), its message PostgreSQL's error as the JDBC driver words it, then
 * `; SQLState: XXXXX` as the service appends it.
 */
export function toDatabaseError(error: unknown): DataApiError {
  if (error instanceof DataApiError) return error;
  const e = error as { message?: string; code?: unknown; severity?: string; detail?: string; hint?: string; position?: string };
  const code = typeof e.code === 'string' && /^[0-9A-Z]{5}$/.test(e.code) ? e.code : undefined;
  if (code === undefined) {
    return new DataApiError('InternalServerErrorException', `The emulator lost its database connection: ${e.message ?? String(error)}`);
  }
  const lines = [`${e.severity ?? 'ERROR'}: ${e.message ?? ''}`];
  if (e.detail) lines.push(`  Detail: ${e.detail}`);
  if (e.hint) lines.push(`  Hint: ${e.hint}`);
  if (e.position) lines.push(`  Position: ${e.position}`);
  return new DataApiError('DatabaseErrorException', `${lines.join('\n')}; SQLState: ${code}`);
}
