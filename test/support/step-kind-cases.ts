import { expect, it } from 'vitest';
import {
  CatalogError,
  contract,
  expand,
  formatVersion,
  loadCatalog,
  readHistory,
  readState,
  type Catalog,
  type EngineEvent,
  type Phase,
  type RunContext,
  type SettingsOverrides,
  type Step,
} from '../../lambdas/core/index.ts';
import { writeMigrations } from './catalog-fixtures.ts';
import { dumpDatabase, type DatabaseDump } from './database-dump.ts';
import { createTestDatabase, type TestDatabase } from './database.ts';
import { rejectionOf } from './engine-faults.ts';
import { migrateToEnd, startRun } from './engine.ts';

/**
 * Table-driven tests of one step kind, in the shape of pgroll's `ExecuteTests`: each case is a small catalog run through
 * expand, migrate and contract (drain confirmed) on a database of its own on the real PostgreSQL, with checks after
 * each phase. A case may expect one phase to fail: it checks the error and what the failure left behind, then
 * optionally repairs the data or the files and runs that phase again, after which the remaining phases and checks run
 * as usual (the re-run must converge). A refused case is a catalog that load must refuse with exactly its problems.
 */

/** What a check sees: the database, the engine's events so far, and small readers of its state. */
export interface CaseState {
  readonly db: TestDatabase;
  readonly catalog: Catalog;
  readonly events: readonly EngineEvent[];
  /** Schema, engine tables and the rows of every table in `public`, as the phase that failed found them. */
  readonly before: DatabaseDump | undefined;
  rows<T = Record<string, unknown>>(sql: string): Promise<T[]>;
  columns(table: string): Promise<string[]>;
  version(): Promise<string>;
  /** The step's `emc.migrate_progress` row, undefined when it has none. */
  progress(stepId: string): Promise<Record<string, unknown> | undefined>;
  /** `[step id, outcome]` of every history row, in order. */
  history(): Promise<[string, string][]>;
  /** The same dump as `before`, now. */
  dump(): Promise<DatabaseDump>;
}

type Check = (state: CaseState) => Promise<void> | void;

export interface StepKindCase {
  readonly name: string;
  /** The application's schema and rows before the upgrade. */
  readonly setup?: string;
  /** Migration files by path (`r1/expand01_x.sql`); releases.json is inferred. */
  readonly files: Record<string, string>;
  readonly settings?: SettingsOverrides;
  readonly afterExpand?: Check;
  readonly afterMigrate?: Check;
  readonly afterContract?: Check;
  readonly fails?: {
    readonly phase: Phase;
    /**
     * Starts what the application holds while the phase runs (a transaction, its locks) and returns how it ends; it
     * ends after `afterFailure`, and must not fail.
     */
    readonly holding?: (db: TestDatabase) => Promise<() => Promise<void>>;
    readonly error: (error: Error) => void;
    readonly afterFailure: Check;
    /**
     * SQL run and/or files replacing the catalog before the failed phase runs again (`{}`: again as it is); without
     * it the case ends.
     */
    readonly repair?: { readonly sql?: string; readonly files?: Record<string, string> };
  };
}

export interface RefusedCase {
  readonly name: string;
  readonly files: Record<string, string>;
  /** Every problem load must report, and no other. */
  readonly problems: readonly { readonly file: string; readonly line?: number; readonly message: string | RegExp }[];
}

const PHASES: readonly Phase[] = ['expand', 'migrate', 'contract'];

/**
 * One test per case; each case's catalog must hold a step of `kind`. Each case has a database of its own, so the cases
 * run concurrently.
 */
export function stepKindCases(kind: Step['kind'], cases: readonly StepKindCase[]): void {
  for (const c of cases) {
    it.concurrent(c.name, async () => {
      const db = await createTestDatabase();
      try {
        await runCase(db, kind, c);
      } finally {
        await db.drop();
      }
    });
  }
}

async function runCase(db: TestDatabase, kind: Step['kind'], c: StepKindCase): Promise<void> {
  if (c.setup) await db.pool.query(c.setup);
  let catalog = await loadCatalog(writeMigrations(c.files));
  expect(catalog.steps.map((s) => s.kind), `the case's catalog holds a ${kind} step`).toContain(kind);
  const events: EngineEvent[] = [];
  const ctx: RunContext = { ...(await startRun(db.client, 'case-run', c.settings)), onEvent: (e) => events.push(e) };
  let before: DatabaseDump | undefined;
  const state = caseState(db, events, () => catalog, () => before);

  for (const phase of PHASES) {
    if (c.fails?.phase === phase) {
      before = await state.dump();
      const release = await c.fails.holding?.(db);
      try {
        const error = await rejectionOf(runPhase(ctx, catalog, phase));
        c.fails.error(error);
        await c.fails.afterFailure(state);
      } finally {
        await release?.();
      }
      const repair = c.fails.repair;
      if (!repair) return;
      if (repair.sql) await db.pool.query(repair.sql);
      if (repair.files) catalog = await loadCatalog(writeMigrations(repair.files));
    }
    await runPhase(ctx, catalog, phase);
    await { expand: c.afterExpand, migrate: c.afterMigrate, contract: c.afterContract }[phase]?.(state);
  }
}

async function runPhase(ctx: RunContext, catalog: Catalog, phase: Phase): Promise<unknown> {
  switch (phase) {
    case 'expand':
      return expand(ctx, catalog);
    case 'migrate':
      return migrateToEnd(ctx, catalog);
    case 'contract':
      return contract(ctx, catalog, undefined, { drainConfirmed: true });
  }
}

function caseState(
  db: TestDatabase,
  events: readonly EngineEvent[],
  catalog: () => Catalog,
  before: () => DatabaseDump | undefined,
): CaseState {
  const rows = async <T>(sql: string) => (await db.pool.query(sql)).rows as T[];
  return {
    db,
    get catalog() {
      return catalog();
    },
    events,
    get before() {
      return before();
    },
    rows,
    async columns(table) {
      const [schema, name] = table.includes('.') ? table.split('.') : ['public', table];
      const found = await db.pool.query<{ column_name: string }>(
        `SELECT column_name FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position`,
        [schema, name],
      );
      return found.rows.map((r) => r.column_name);
    },
    version: async () => formatVersion((await readState(db.client)).version),
    async progress(stepId) {
      const found = await db.pool.query(
        `SELECT cursor, rows_done::int AS rows_done, batches::int AS batches, finished, pass FROM emc.migrate_progress WHERE step_id = $1`,
        [stepId],
      );
      return found.rows[0];
    },
    history: async () => (await readHistory(db.client)).map((h) => [h.stepId, h.outcome]),
    async dump() {
      const tables = await rows<{ name: string }>(
        `SELECT format('%I.%I', schemaname, tablename) AS name FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`,
      );
      return dumpDatabase(db.pool, tables.map((t) => t.name));
    },
  };
}

/** One test per case: load refuses the catalog with exactly the case's problems, each with its file and line. */
export function refusedCatalogs(cases: readonly RefusedCase[]): void {
  for (const { name, files, problems } of cases) {
    it(`refused at load: ${name}`, async () => {
      const error = await rejectionOf(loadCatalog(writeMigrations(files)));
      expect(error).toBeInstanceOf(CatalogError);
      const found = (error as CatalogError).problems;
      expect(found, error.message).toHaveLength(problems.length);
      for (const expected of problems) {
        const match = found.find(
          (p) =>
            p.file === expected.file &&
            (typeof expected.message === 'string' ? p.message.includes(expected.message) : expected.message.test(p.message)),
        );
        expect(match, `no problem in ${expected.file} matching ${String(expected.message)}; got ${error.message}`).toBeDefined();
        if (expected.line !== undefined) expect(match!.line).toBe(expected.line);
      }
    });
  }
}
