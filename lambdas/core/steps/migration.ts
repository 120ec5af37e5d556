import { DATA_MODIFYING, writesOfSelect } from '../catalog/parse-tree.ts';
import type { ParsedStatement } from '../catalog/sql-statements.ts';
import type { Statement } from '../catalog/step.ts';
import { MigrateRunawayError, PendingRowsRemainError, StepFailedError } from '../errors.ts';
import type { BatchSource } from '../migrate/batch-source.ts';
import { BatchSizeController } from '../migrate/batch-size-controller.ts';
import { runBatch } from '../migrate/run-batch.ts';
import { pendingRows } from '../phases/pending-query.ts';
import { autocommitted, leased, leasedCall, reading, type RunContext } from '../phases/run-context.ts';
import { failStep } from '../phases/step-errors.ts';
import { formatVersion } from '../state/composite-version.ts';
import { recordHistory } from '../state/history.ts';
import { finishMigration, readProgress, startPass, startProgress, type ProgressRow } from '../state/migrate-progress.ts';
import type { Budget, Migration, PreparedStep, StepCommon, StepFile, StepOutcome } from './step-kind.ts';

/**
 * What the two migration kinds share: the file holds one data-modifying statement, the runner repeats it batch by
 * batch (each batch one statement holding its writes AND its progress row, so a crash neither loses nor repeats a
 * batch), and a pending query says when no row is left. The kinds differ by how a batch finds its rows (`BatchSource`).
 */
export interface MigrationCommon extends StepCommon {
  readonly phase: 'migrate';
  /** Exactly one: the batch. */
  readonly statements: readonly [Statement];
  /** Batch size from the file, overriding the run's default. */
  readonly batchSize: number | undefined;
  /** A query returning one number: rows still to migrate. Used for progress and as a gate before contract. */
  readonly pendingSql: string | undefined;
}

/**
 * A step whose pending query still finds rows after this many passes is stuck, not slow. Before pass `n + 1` the step
 * waits `n × lockTimeoutMs`: rows the application holds locked (skipped by a SKIP LOCKED statement, or by a keyset
 * pass that went past them) get the same patience, growing, that a batch gives a lock. At most `MAX_PASS_PAUSE_MS`,
 * which the call's 60 s margin before the function's timeout covers (see `settingsProblems`).
 */
const MAX_PASSES = 4;
const MAX_PASS_PAUSE_MS = 30_000;

/**
 * The validation both migration kinds share, around the kind's own: one statement; `readStrategy` (the kind's
 * directive); a data-modifying statement using exactly the placeholders `parameters` the kind binds; `emc:batch-size`;
 * and the pending query (required when the release has contract steps, unless `emc:no-pending` says why not).
 */
export function parseMigration<K extends Migration['kind'], T extends object>(
  file: StepFile<'migrate'>,
  kind: K,
  parameters: readonly string[],
  readStrategy: (statement: ParsedStatement) => T | undefined,
): (MigrationCommon & { readonly kind: K } & T) | undefined {
  const { statements, problem, directive } = file;
  const { placeholderNames, splitStatements } = file.parser;
  const [statement] = statements;
  if (statement === undefined || statements.length !== 1) {
    problem(`a migrate step holds exactly one statement (the batch), found ${statements.length}`);
    return undefined;
  }
  const strategy = readStrategy(statement);
  if (!strategy) return undefined;

  if (!DATA_MODIFYING.has(statement.type)) {
    const found = statement.type === 'SelectStmt' ? 'a SELECT' : statement.type;
    problem(
      `the batch statement must be an INSERT, UPDATE, DELETE or MERGE (a WITH clause before it is fine), found ${found}: ` +
        'emc repeats it batch by batch and counts the rows it changes, and a SELECT returns rows instead ' +
        '(SELECT count(*) returns one every time, so the step would never end); put the data-modifying statement at the top',
      statement.line,
    );
  }
  const used = placeholderNames(statement.sql);
  const unknown = used.filter((n) => !parameters.includes(n));
  const missing = parameters.filter((n) => !used.includes(n));
  if (unknown.length > 0 || missing.length > 0) {
    problem(
      `a ${kind} statement must use ${parameters.map((n) => `:${n}`).join(' and ')}` +
        (missing.length ? `; missing ${missing.map((n) => `:${n}`).join(', ')}` : '') +
        (unknown.length ? `; unknown ${unknown.map((n) => `:${n}`).join(', ')}` : ''),
      statement.line,
    );
  }

  let batchSize: number | undefined;
  const size = directive('batch-size');
  if (size) {
    batchSize = Number(size.argument);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
      problem(`"emc:batch-size" must be a whole number from 1 to 100000, found "${size.argument}"`, size.line);
    }
  }

  let pendingSql: string | undefined;
  const pending = directive('pending');
  const noPending = directive('no-pending');
  if (pending && noPending) {
    problem('choose "emc:pending" or "emc:no-pending", not both', noPending.line);
  } else if (noPending && !file.releaseHasContract) {
    problem('"emc:no-pending" overrides nothing: the release has no contract step that would rely on a pending query', noPending.line);
  } else if (!pending && !noPending && file.releaseHasContract) {
    // Contract drops what the old release used; the pending query is its only evidence that no row was left behind.
    problem(
      'a migrate step of a release with contract steps needs "-- emc:pending <SELECT>": contract checks it to know that ' +
        'no row is left to migrate before it drops anything; if no row can be left behind, say why with "-- emc:no-pending <reason>"',
    );
  }
  if (pending) {
    const split = splitStatements(pending.argument);
    const [query] = split.ok ? split.statements : [];
    const writes = split.ok && split.statements.length === 1 && query ? writesOfSelect(query.node) : [];
    if (!split.ok) {
      problem(`"emc:pending" query does not parse: ${split.message}`, pending.line);
    } else if (split.statements.length !== 1 || query?.type !== 'SelectStmt') {
      problem('"emc:pending" must be one SELECT returning the number of rows still to migrate', pending.line);
    } else if (placeholderNames(pending.argument).length > 0) {
      problem('"emc:pending" query takes no parameters', pending.line);
    } else if (writes.length > 0) {
      problem(
        `"emc:pending" must only read, and this query writes: ${writes.join('; ')}; it runs at every plan, migrate call and contract gate`,
        pending.line,
      );
    } else {
      pendingSql = query.sql;
    }
  }
  return {
    ...file.common,
    kind,
    statements: [{ sql: statement.sql, line: statement.line }],
    batchSize,
    pendingSql,
    ...strategy,
  };
}

/** A migration over its `BatchSource`: run batches for a budget, and tell what remains. */
/** `strategy`: the kind's `describe` of the step, stored with its progress. */
export function preparedMigration(ctx: RunContext, step: Migration, source: BatchSource, strategy: string): PreparedStep {
  return {
    run: (budget) => runMigration(ctx, step, source, strategy, budget),
    remaining: async (tx, progress) =>
      (await pendingRows(tx, step)) ?? (await source.estimateRemaining(tx, progress?.keysScanned ?? 0)),
  };
}

async function runMigration(ctx: RunContext, step: Migration, source: BatchSource, strategy: string, budget: Budget): Promise<StepOutcome> {
  const startedAt = new Date();
  const { deadline, mustProgress } = budget;
  const sizes = new BatchSizeController(
    step.batchSize ?? ctx.settings.batchSize,
    ctx.settings.targetBatchMs,
    step.batchSize !== undefined || ctx.settings.targetBatchMs === 0,
  );
  let rows = 0;
  let batches = 0;
  try {
    let progress = await leasedCall(ctx, `starting ${step.id}`, (session, lease) => startProgress(session, lease, step, strategy));
    let lastBatchMs = 0;
    while ((mustProgress && batches === 0) || Date.now() + lastBatchMs < deadline) {
      const batchSize = sizes.next;
      const batchStart = Date.now();
      const batch = await runBatch(ctx, step, source, progress, batchSize);
      lastBatchMs = Date.now() - batchStart;
      sizes.observe(batchSize, lastBatchMs, batch.passEnded);
      rows += batch.rows;
      batches += batch.ran ? 1 : 0;
      progress = batch.progress;
      if (batch.ran) {
        ctx.onEvent?.({
          type: 'batch',
          stepId: step.id,
          rows: batch.rows,
          batchSize,
          rowsDone: progress.rowsDone,
          cursor: progress.cursor,
          durationMs: lastBatchMs,
        });
      }
      if (batch.passEnded) {
        const version = await finishOrRestartPass(ctx, step, progress, rows, startedAt);
        if (version !== undefined) return { finished: true, rows, batches, version };
        progress = (await readProgress(autocommitted(ctx, `reading the progress of ${step.id}`), step.id))!;
      } else {
        const runaway = source.runaway(progress.passRows, batchSize);
        if (runaway) throw new MigrateRunawayError(step.id, `${runaway} (${step.file})`);
      }
      if (ctx.settings.batchPauseMs > 0) {
        // batchPauseMs is the database's gap between two batches: the part of the call's round trip spent outside it
        // (over the Data API, the HTTPS request there and back) already gave it some of that.
        const pauseMs = Math.max(0, ctx.settings.batchPauseMs - batch.outsideDatabaseMs);
        // No time left for the pause: stop here rather than run the next batches without one.
        if (Date.now() + pauseMs >= deadline) break;
        if (pauseMs > 0) await new Promise((resolve) => setTimeout(resolve, pauseMs));
      }
    }
    // A call whose budget ran out before this step's first batch did no work on it: nothing to record.
    if (batches > 0) {
      await leased(ctx, `recording the progress of ${step.id}`, (tx) =>
        recordHistory(tx, { runId: ctx.runId, step, startedAt, rowsAffected: rows, outcome: 'continued' }),
      );
    }
    return { finished: false, rows, batches };
  } catch (error) {
    // Each batch is its own statement, all or nothing: a failure leaves the batches before it, and none of its own.
    throw await failStep(ctx, step, true, startedAt, error instanceof StepFailedError ? undefined : step.statements[0], error);
  }
}

/**
 * At the end of a pass: if the step's pending query finds no rows (or it has none), the step is finished and
 * recorded as applied in one statement (`emc.finish_migration`); returns the version. Otherwise rows are left that the pass did not change:
 * written by the old release behind a keyset cursor, or locked by the application when a batch came by. Another pass
 * starts, after a growing pause, a bounded number of times; returns undefined.
 */
async function finishOrRestartPass(
  ctx: RunContext,
  step: Migration,
  progress: ProgressRow,
  rowsThisCall: number,
  startedAt: Date,
): Promise<string | undefined> {
  const pending = await reading(ctx, `counting the rows pending for ${step.id}`, (tx) => pendingRows(tx, step));
  if (pending !== undefined && pending > 0) {
    const last = progress.pass >= MAX_PASSES;
    const pauseMs = Math.min(progress.pass * ctx.settings.lockTimeoutMs, MAX_PASS_PAUSE_MS);
    if (!last) await new Promise((resolve) => setTimeout(resolve, pauseMs));
    // After the last pass the step fails, and the next run starts a new series of passes from the first key.
    await leased(ctx, `restarting ${step.id} for another pass`, (tx) => startPass(tx, step.id, last ? 1 : progress.pass + 1));
    if (last) throw new PendingRowsRemainError(step.id, step.file, pending, progress.pass);
    ctx.onEvent?.({ type: 'migrate-pass-restarted', stepId: step.id, pending, pass: progress.pass + 1 });
    return undefined;
  }
  const version = await leasedCall(ctx, `recording ${step.id} as applied`, (session, lease) =>
    finishMigration(session, lease, { step, runId: ctx.runId, startedAt, rowsAffected: rowsThisCall }),
  );
  return formatVersion(version);
}
