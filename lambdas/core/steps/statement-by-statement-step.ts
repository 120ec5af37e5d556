import type { Statement } from '../catalog/step.ts';
import { IndexBuildInProgressError } from '../errors.ts';
import { leased, type RunContext } from '../phases/run-context.ts';
import { failStep } from '../phases/step-errors.ts';
import { StatementStillRunningError, type SqlSession } from '../sql/sql-client.ts';
import { formatVersion } from '../state/composite-version.ts';
import { recordApplied } from '../state/database-state.ts';
import { finishHistory, startHistory } from '../state/history.ts';
import type { StepCommon, StepKind } from './step-kind.ts';

/** A statement of a `no-transaction` step. */
export interface StandaloneStatement extends Statement {
  /** Set for `CREATE INDEX CONCURRENTLY`: a re-run after a crash checks for an invalid index of this name. */
  readonly concurrentIndex?: { readonly schema: string | undefined; readonly name: string };
}

/** An expand or contract step marked `-- emc:no-transaction` (CREATE INDEX CONCURRENTLY): run statement by statement. */
export interface StatementByStatementStep extends StepCommon {
  readonly kind: 'statement-by-statement';
  readonly phase: 'expand' | 'contract';
  readonly statements: readonly StandaloneStatement[];
}

/**
 * For statements PostgreSQL refuses inside a transaction, made safe to repeat after a crash. A crash can leave an
 * INVALID index behind: it is dropped and rebuilt; a valid index of the same name means the statement already
 * succeeded and is skipped. Other statements in such a step must be idempotent themselves (IF [NOT] EXISTS).
 * Refused at load: a CREATE INDEX CONCURRENTLY without a name (a re-run could not find it).
 *
 * Such a statement cannot re-check the lease in its own transaction: the check (and renewal) runs in a call of its
 * own just before it, together with the index lookup. What remains open is a run that stalls for longer than the
 * lease's ttl between that check and the statement's start, and a statement that itself outlives the ttl: another
 * run may then take the lease over (it would find this index being built, `IndexBuildInProgressError`).
 */
export const statementByStatementStep: StepKind<StatementByStatementStep> = {
  kind: 'statement-by-statement',
  transactional: false,
  phases: ['expand', 'contract'],
  selectedBy: { directive: 'no-transaction', example: '-- emc:no-transaction' },
  describe: () => 'no-transaction',

  parse(file) {
    const statements: StandaloneStatement[] = [];
    for (const statement of file.statements) {
      const concurrent = statement.type === 'IndexStmt' && statement.node.concurrent === true;
      if (concurrent && !statement.node.idxname) {
        file.problem('CREATE INDEX CONCURRENTLY must name its index, so that a re-run after a crash can find it', statement.line);
      }
      if (concurrent && statement.node.idxname) {
        const relation = statement.node.relation as { schemaname?: string } | undefined;
        statements.push({
          sql: statement.sql,
          line: statement.line,
          concurrentIndex: { schema: relation?.schemaname, name: String(statement.node.idxname) },
        });
      } else {
        statements.push({ sql: statement.sql, line: statement.line });
      }
    }
    return { ...file.common, kind: 'statement-by-statement', statements };
  },

  async prepare(ctx, step) {
    return {
      run: async () => ({ finished: true, rows: 0, batches: 0, version: await applyStatementByStatement(ctx, step) }),
      remaining: async () => 0,
    };
  },
};

async function applyStatementByStatement(ctx: RunContext, step: StatementByStatementStep): Promise<string> {
  const startedAt = new Date();
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
        if (error instanceof StatementStillRunningError && index) throw new IndexBuildInProgressError(step.id, index.name);
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
    throw await failStep(ctx, step, statementByStatementStep.transactional, startedAt, current, error, historyId);
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
async function prepareConcurrentIndex(
  ctx: RunContext,
  step: StatementByStatementStep,
  existing: ExistingIndex | undefined,
): Promise<'built' | 'absent'> {
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
