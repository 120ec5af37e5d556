import { randomBytes } from 'node:crypto';
import type pg from 'pg';
import { toDatabaseError, type Database } from './database.ts';
import { badRequest, type DataApiError } from './errors.ts';

interface OpenTransaction {
  readonly client: pg.PoolClient;
  /** Calls on one transaction run one after the other, as on one database connection. */
  queue: Promise<unknown>;
  busy: number;
  idleTimer: NodeJS.Timeout | undefined;
}

/**
 * Transactions begun with BeginTransaction, each on a connection of its own.
 *
 * - "A transaction times out if there are no calls that use its transaction ID in three minutes. If a transaction
 *   times out before it's committed, it's rolled back automatically" (reference, BeginTransaction). Documentation
 *   silent on when the three minutes start; emulator's choice: when the last call on the transaction answered (a
 *   statement still running is not idle).
 * - "Transaction <transaction_ID> is not found ... The transaction may have expired ... A previous call resulted in
 *   the termination of your transaction ... The transaction was aborted due to an error from a previous call"
 *   (Aurora User Guide, Troubleshooting Data API). The answer is a BadRequestException with that message (the
 *   answer the service has long given; the model's newer TransactionNotFoundException is not used here).
 */
export class Transactions {
  private readonly open = new Map<string, OpenTransaction>();

  constructor(
    private readonly database: Database,
    private readonly idleTimeoutMs: number,
  ) {}

  async begin(client: pg.PoolClient): Promise<string> {
    await client.query('BEGIN').catch((error: unknown) => {
      throw toDatabaseError(error);
    });
    const id = randomBytes(24).toString('base64');
    const tx: OpenTransaction = { client, queue: Promise.resolve(), busy: 0, idleTimer: undefined };
    this.open.set(id, tx);
    this.scheduleIdle(id, tx);
    return id;
  }

  /** Runs `work` on the transaction's connection after the calls before it; an error answer aborts it. */
  async use<T>(id: string, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
    const tx = this.get(id);
    tx.busy++;
    clearTimeout(tx.idleTimer);
    const run = tx.queue.then(async () => {
      // Aborted or expired while this call waited for the one before it.
      if (this.open.get(id) !== tx) throw notFound(id);
      return work(tx.client);
    });
    tx.queue = run.catch(() => {});
    try {
      return await run;
    } catch (error) {
      await this.end(id, 'ROLLBACK');
      throw error;
    } finally {
      tx.busy--;
      if (this.open.get(id) === tx) this.scheduleIdle(id, tx);
    }
  }

  /**
   * COMMIT or ROLLBACK, and the transaction is forgotten whatever the outcome. A commit the database refuses (a
   * deferred constraint, a serialization failure) is a database error like any statement's.
   */
  async finish(id: string, command: 'COMMIT' | 'ROLLBACK'): Promise<void> {
    await this.use(id, async (client) => {
      await client.query(command).catch((error: unknown) => {
        throw toDatabaseError(error);
      });
    });
    await this.end(id, undefined);
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.open.keys()].map((id) => this.end(id, 'ROLLBACK')));
  }

  private get(id: string): OpenTransaction {
    const tx = this.open.get(id);
    if (!tx) throw notFound(id);
    return tx;
  }

  private scheduleIdle(id: string, tx: OpenTransaction): void {
    clearTimeout(tx.idleTimer);
    if (tx.busy > 0) return;
    tx.idleTimer = setTimeout(() => void this.end(id, 'ROLLBACK'), this.idleTimeoutMs);
    tx.idleTimer.unref();
  }

  private async end(id: string, command: 'ROLLBACK' | undefined): Promise<void> {
    const tx = this.open.get(id);
    if (!tx) return;
    this.open.delete(id);
    clearTimeout(tx.idleTimer);
    // After the calls already queued (a statement left running with continueAfterTimeout finishes first).
    await tx.queue;
    if (command) await tx.client.query(command).catch(() => {});
    await this.database.release(tx.client);
  }
}

function notFound(id: string): DataApiError {
  return badRequest(
    `Transaction ${id} is not found: it may have timed out (no call for three minutes), been committed or rolled ` +
      `back, or been aborted by an error in an earlier call.`,
  );
}
