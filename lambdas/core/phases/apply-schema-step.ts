import type { Statement, Step } from '../catalog/step.ts';
import { IndexBuildInProgressError } from '../errors.ts';
import { StatementStillRunningError } from '../sql/sql-client.ts';
import { formatVersion } from '../state/composite-version.ts';
import { recordApplied } from '../state/database-state.ts';
import { finishHistory, recordHistory, startHistory } from '../state/history.ts';
import { renewLease } from '../state/lease.ts';
import type { RunContext } from './run-context.ts';
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
      // application query queue behind this step's pending ACCESS EXCLUSIVE lock.
      await renewLease(tx, ctx.runId, ctx.settings.leaseTtlSeconds, { lockTimeoutMs: ctx.settings.lockTimeoutMs });
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
 */
async function applyStatementByStatement(ctx: RunContext, step: Step, startedAt: Date): Promise<string> {
  let current: Statement | undefined;
  let historyId: number | undefined;
  try {
    historyId = await ctx.client.transaction(async (tx) => {
      await renewLease(tx, ctx.runId, ctx.settings.leaseTtlSeconds);
      return startHistory(tx, ctx.runId, step);
    });
    for (const statement of step.statements) {
      current = statement;
      if (statement.concurrentIndex && (await prepareConcurrentIndex(ctx, step, statement.concurrentIndex)) === 'built') {
        continue;
      }
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
    return await ctx.client.transaction(async (tx) => {
      await renewLease(tx, ctx.runId, ctx.settings.leaseTtlSeconds);
      const version = await recordApplied(tx, step, ctx.runId);
      await finishHistory(tx, id, 'succeeded');
      return formatVersion(version);
    });
  } catch (error) {
    throw await failStep(ctx, step, startedAt, current, error, historyId);
  }
}

/** Drops an invalid leftover of a crashed CREATE INDEX CONCURRENTLY; says whether a valid index already exists. */
async function prepareConcurrentIndex(
  ctx: RunContext,
  step: Step,
  index: { schema: string | undefined; name: string },
): Promise<'built' | 'absent'> {
  const found = await ctx.client.query<{ qualified: string; valid: boolean; building: boolean }>(
    `SELECT format('%I.%I', n.nspname, c.relname) AS qualified, i.indisvalid AS valid,
            EXISTS (SELECT 1 FROM pg_stat_progress_create_index p WHERE p.index_relid = c.oid) AS building
     FROM pg_index i
     JOIN pg_class c ON c.oid = i.indexrelid
     JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.oid = to_regclass(CASE WHEN :schema::text IS NULL THEN format('%I', :name::text)
                                    ELSE format('%I.%I', :schema::text, :name::text) END)`,
    { schema: index.schema ?? null, name: index.name },
  );
  const existing = found.rows[0];
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
