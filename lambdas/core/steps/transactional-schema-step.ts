import { needsNoTransaction } from '../catalog/phase-lint.ts';
import type { Statement } from '../catalog/step.ts';
import type { RunContext } from '../phases/run-context.ts';
import { failStep } from '../phases/step-errors.ts';
import { formatVersion } from '../state/composite-version.ts';
import { recordApplied } from '../state/database-state.ts';
import { recordHistory } from '../state/history.ts';
import { renewLease } from '../state/lease.ts';
import type { StepCommon, StepKind } from './step-kind.ts';

/** An expand or contract step run in ONE transaction: the default. */
export interface TransactionalSchemaStep extends StepCommon {
  readonly kind: 'transactional';
  readonly phase: 'expand' | 'contract';
}

/**
 * All its statements, the version update and its history row commit together, under `lock_timeout`: the step either
 * fully happens or leaves no trace but a failed history row. Refused at load: a statement PostgreSQL cannot run in
 * a transaction (it belongs in a `-- emc:no-transaction` step).
 */
export const transactionalSchemaStep: StepKind<TransactionalSchemaStep> = {
  kind: 'transactional',
  transactional: true,
  phases: ['expand', 'contract'],
  selectedBy: 'default',
  describe: () => 'transactional',

  parse(file) {
    for (const statement of file.statements) {
      if (needsNoTransaction(statement)) {
        file.problem(
          `${statement.type} cannot run inside a transaction; put it in its own step marked "-- emc:no-transaction"`,
          statement.line,
        );
      }
    }
    return {
      ...file.common,
      kind: 'transactional',
      statements: file.statements.map((s) => ({ sql: s.sql, line: s.line })),
    };
  },

  async prepare(ctx, step) {
    return {
      run: async () => ({ finished: true, rows: 0, batches: 0, version: await applyInTransaction(ctx, step) }),
      remaining: async () => 0,
    };
  },
};

async function applyInTransaction(ctx: RunContext, step: TransactionalSchemaStep): Promise<string> {
  const startedAt = new Date();
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
    throw await failStep(ctx, step, transactionalSchemaStep.transactional, startedAt, current, error);
  }
}
