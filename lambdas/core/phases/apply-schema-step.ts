import type { Statement, Step } from '../catalog/step.ts';
import { IndexBuildInProgressError } from '../errors.ts';
import { StatementStillRunningError, type SqlSession } from '../sql/sql-client.ts';
import { formatVersion } from '../state/composite-version.ts';
import { recordApplied } from '../state/database-state.ts';
import { finishHistory, recordHistory, startHistory } from '../state/history.ts';
import { renewLease } from '../state/lease.ts';
import { leased, type RunContext } from './run-context.ts';
import { failStep } from './step-errors.ts';

export interface StepRun {
  readonly stepId: string;
  readonly phase: string;
  readonly durationMs: number;
  readonly rowsAffected?: number;
  /** The composite version once the step committed. */
  readonly version: string;
}

/**
 * Applies one expand or contract step. A transactional step runs all its statements, the version update and its
 * history row in ONE transaction under `lock_timeout`: it either fully happens or leaves no trace but a failed
 * history row. A `no-transaction` step runs statement by statement and is made safe to repeat after a crash.
 */
export async function applySchemaStep(ctx: RunContext, step: Step): Promise<StepRun> {
  ctx.onEvent?.({ type: 'step-started', stepId: step.id, phase: step.phase });
  const startedAt = new Date();
  const run = step.transactional ? applyInTransaction : applyStatementByStatement;
  const version = await run(ctx, step, startedAt);
  const durationMs = Date.now() - startedAt.getTime();
  ctx.onEvent?.({ type: 'step-succeeded', stepId: step.id, durationMs, version });
  return { stepId: step.id, phase: step.phase, durationMs, version };
}

async function applyInTransaction(ctx: RunContext, step: Step, startedAt: Date): Promise<string> {
  let current: Statement | undefined;
  try {
    return await ctx.client.transaction(async (tx) => {
      // DDL waits at most lock_timeout for its lock, so a long application transaction cannot make every
      // application query queue behind this step's pending ACCESS EXCLUSIVE lock. The step's own statements keep the
      // database's statement_timeout (a DDL step may rightly run long); the bookkeeping after them only writes the
      // engine's rows, whose waits lock_timeout bounds.
      await renewLease(tx, ctx.runId, ctx.settings.leaseTtlSeconds, {
        lockTimeoutMs: ctx.settings.lockTimeoutMs,
        statementTimeoutMs: undefined,
        idleInTransactionTimeoutMs: ctx.settings.idleInTransactionTimeoutMs,
      });
      for (const statement of step.statements) {
        current = statement;
        await tx.query(statement.sql);
      }
      current = undefined;
      const version = await recordApplied(tx, step, ctx.runId);
      await recordHistory(tx, { runId: ctx.runId, step, startedAt, outcome: 'succeeded' });
      return formatVersion(version);
    });
  } catch (error) {
    throw await failStep(ctx, step, startedAt, current, error);
  }
}

/**
 * For statements PostgreSQL refuses inside a transaction (CREATE INDEX CONCURRENTLY). A crash can leave an
 * INVALID index behind: it is dropped and rebuilt; a valid index of the same name means the statement already
 * succeeded and is skipped. Other statements in such a step must be idempotent themselves (IF [NOT] EXISTS).
 *
 * Such a statement cannot re-check the lease in its own transaction: the check (and renewal) runs in a call of its
 * own just before it, together with the index lookup. What remains open is a run that stalls for longer than the
 * lease's ttl between that check and the statement's start, and a statement that itself outlives the ttl: another
 * run may then take the lease over (it would find this index being built, `IndexBuildInProgressError`).
 */
async function applyStatementByStatement(ctx: RunContext, step: Step, startedAt: Date): Promise<string> {
  let current: Statement | undefined;
  let historyId: number | undefined;
  try {
    historyId = await leased(ctx, `starting ${step.id}`, (tx) => startHistory(tx, ctx.runId, step));
    for (const statement of step.statements) {
      current = statement;
      const index = statement.concurrentIndex;
      const existing = await leased(ctx, `checking the lease before a statement of ${step.id}`, (tx) =>
        index ? findIndex(tx, index) : Promise.resolve(undefined),
      );
      if (index && (await prepareConcurrentIndex(ctx, step, existing)) === 'built') continue;
      try {
        await ctx.client.query(statement.sql, {}, { longRunning: true });
      } catch (error) {
        if (error instanceof StatementStillRunningError && statement.concurrentIndex) {
          throw new IndexBuildInProgressError(step.id, statement.concurrentIndex.name);
        }
        throw error;
      }
    }
    current = undefined;
    const id = historyId;
    return await leased(ctx, `recording ${step.id} as applied`, async (tx) => {
      const version = await recordApplied(tx, step, ctx.runId);
      await finishHistory(tx, id, 'succeeded');
      return formatVersion(version);
    });
  } catch (error) {
    throw await failStep(ctx, step, startedAt, current, error, historyId);
  }
}

interface ExistingIndex {
  readonly qualified: string;
  readonly valid: boolean;
  readonly building: boolean;
}

async function findIndex(tx: SqlSession, index: { schema: string | undefined; name: string }): Promise<ExistingIndex | undefined> {
  const found = await tx.query<{ qualified: string; valid: boolean; building: boolean }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS qualified, i.indisvalid AS valid,
            EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid) AS building
     FROM pg_index i
     JOIN pg_class c ON c.oid = i.indexrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = to_regclass(CASE WHEN :schema::text IS NULL THEN format('%I', :name::text)
                                    ELSE format('%I.%I', :schema::text, :name::text) END)`,
    { schema: index.schema ?? null, name: index.name },
  );
  return found.rows[0];
}

/** Drops an invalid leftover of a crashed CREATE INDEX CONCURRENTLY; says whether a valid index already exists. */
async function prepareConcurrentIndex(ctx: RunContext, step: Step, existing: ExistingIndex | undefined): Promise<'built' | 'absent'> {
  if (!existing) return 'absent';
  if (existing.valid) {
    ctx.onEvent?.({ type: 'index-already-built', stepId: step.id, index: existing.qualified });
    return 'built';
  }
  // Invalid while a build is under way is not a leftover: dropping it would restart the build forever.
  if (existing.building) throw new IndexBuildInProgressError(step.id, existing.qualified);
  await ctx.client.query(`DROP INDEX CONCURRENTLY IF EXISTS ${existing.qualified}`, {}, { longRunning: true });
  ctx.onEvent?.({ type: 'invalid-index-dropped', stepId: step.id, index: existing.qualified });
  return 'absent';
}
