import { LeaseBusyError } from '../errors.ts';
import { SqlError, type SqlClient } from '../sql/sql-client.ts';
import type { UpgradeSettings } from '../settings.ts';
import {
  boundSession,
  engineBounds,
  readTransaction,
  type BoundedSession,
  type ReadOnlySession,
} from '../state/engine-transaction.ts';
import { currentLease, leaseLost, renewLease, type LeaseHold } from '../state/lease.ts';
import { BATCH_LEASE_BUSY, BATCH_LEASE_NOT_HELD } from '../state/schema.ts';

/** An event the engine reports while it works; the Lambda handlers log them, the CLI prints them. */
export type EngineEvent =
  | { readonly type: 'step-started'; readonly stepId: string; readonly phase: string }
  | { readonly type: 'step-succeeded'; readonly stepId: string; readonly durationMs: number; readonly version: string }
  | { readonly type: 'step-failed'; readonly stepId: string; readonly error: string }
  | { readonly type: 'index-already-built'; readonly stepId: string; readonly index: string }
  | { readonly type: 'invalid-index-dropped'; readonly stepId: string; readonly index: string }
  | {
      readonly type: 'batch';
      readonly stepId: string;
      readonly rows: number;
      /** The rows the batch was sized for (its adaptive size, or the fixed one). */
      readonly batchSize: number;
      readonly rowsDone: number;
      readonly cursor: string | undefined;
      readonly durationMs: number;
    }
  | { readonly type: 'migrate-pass-restarted'; readonly stepId: string; readonly pending: number; readonly pass: number }
  | { readonly type: 'migrate-step-restarted'; readonly stepId: string; readonly rowsDone: number; readonly batches: number };

/** What every phase needs: the database, who is running (the lease owner, recorded in history), and the settings. */
export interface RunContext {
  readonly client: SqlClient;
  /** The run's identity: the Step Functions execution ARN, or a local run id. Holds the lease. */
  readonly runId: string;
  readonly settings: UpgradeSettings;
  readonly onEvent?: (event: EngineEvent) => void;
}

/** Runs engine reads in one READ ONLY transaction under the engine's statement timeout (`EngineTimeoutError`). */
export function reading<T>(
  ctx: Pick<RunContext, 'client' | 'settings'>,
  what: string,
  work: (tx: ReadOnlySession) => Promise<T>,
): Promise<T> {
  return readTransaction(ctx.client, engineBounds(ctx.settings), what, work);
}

/**
 * Runs engine writes (progress and history rows, ...) in one transaction whose first statement re-checks and renews
 * this run's lease and sets the engine's limits: a run whose lease was taken over writes nothing (`LeaseLostError`).
 */
export function leased<T>(ctx: RunContext, what: string, work: (tx: BoundedSession) => Promise<T>): Promise<T> {
  const bounds = engineBounds(ctx.settings);
  return ctx.client.transaction(async (tx) => {
    await renewLease(tx, ctx.runId, ctx.settings.leaseTtlSeconds, bounds);
    return work(boundSession(tx, bounds.statementTimeoutMs, what));
  });
}

/**
 * Engine statements run one by one, each autocommitted (one RDS Data API call, where a transaction costs two more):
 * for statements that read one snapshot or write all or nothing on their own. Each is bounded by
 * `engineStatementTimeoutMs` where the client arms it before the call (node-postgres) and by the Data API's 45 s call
 * limit on Aurora (`QueryOptions.statementTimeoutMs`), and a timeout fails as `EngineTimeoutError` naming `what`. Only
 * for the engine's own statements on its state tables and the catalog, whose only long wait could be a lock: a
 * pending query, the user's SQL, runs in `reading`, under the statement timeout and READ ONLY on every client.
 */
export function autocommitted(ctx: Pick<RunContext, 'client' | 'settings'>, what: string): BoundedSession {
  const statementTimeoutMs = ctx.settings.engineStatementTimeoutMs;
  return boundSession({ query: (sql, params) => ctx.client.query(sql, params, { statementTimeoutMs }) }, statementTimeoutMs, what);
}

/**
 * Engine writes as ONE autocommitted statement calling an engine function that holds the lease first
 * (`emc.hold_lease`): one call instead of a `leased` transaction's three or more. `work` must make exactly one such
 * call. A run whose lease was taken over writes nothing: the function raises before it writes, and that is thrown as
 * `LeaseLostError` (or `LeaseBusyError` when the lease row stayed locked), as `leased` throws them.
 */
export async function leasedCall<T>(ctx: RunContext, what: string, work: (session: BoundedSession, lease: LeaseHold) => Promise<T>): Promise<T> {
  try {
    return await work(autocommitted(ctx, what), {
      owner: ctx.runId,
      ttlSeconds: ctx.settings.leaseTtlSeconds,
      lockTimeoutMs: ctx.settings.lockTimeoutMs,
    });
  } catch (error) {
    throw await leaseError(ctx, error);
  }
}

/** The lease conditions `emc.hold_lease` raises, by SQLSTATE, as the engine's errors; any other error unchanged. */
export async function leaseError(ctx: RunContext, error: unknown): Promise<unknown> {
  if (!(error instanceof SqlError)) return error;
  switch (error.sqlState) {
    case BATCH_LEASE_NOT_HELD: {
      // Who holds it instead, for the message: one more call, on this failure path only.
      const holder = await reading(ctx, 'reading the upgrade lease', (tx) => currentLease(tx)).catch(() => undefined);
      return leaseLost(ctx.runId, holder);
    }
    case BATCH_LEASE_BUSY:
      return new LeaseBusyError(undefined, ctx.settings.lockTimeoutMs, `run ${ctx.runId} could not renew its lease; nothing was written.`, {
        cause: error,
      });
    default:
      return error;
  }
}
