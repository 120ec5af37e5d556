import type { SqlClient } from '../sql/sql-client.ts';
import type { UpgradeSettings } from '../settings.ts';
import {
  boundSession,
  engineBounds,
  readTransaction,
  type BoundedSession,
  type ReadOnlySession,
} from '../state/engine-transaction.ts';
import { renewLease } from '../state/lease.ts';

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
