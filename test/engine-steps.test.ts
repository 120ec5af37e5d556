import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  contract,
  expand,
  loadCatalog,
  PgSqlClient,
  readHistory,
  readState,
  formatVersion,
  StepFailedError,
  type Catalog,
  type EngineEvent,
  type RunContext,
} from '../lambdas/core/index.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { migrateToEnd, startRun, upgrade } from './support/engine.ts';
import {
  armPause,
  disarmPause,
  installPause,
  killEngineBackendWhenSleeping,
  publicSchema,
  rejectionOf,
} from './support/engine-faults.ts';

const databases: TestDatabase[] = [];
const clients: PgSqlClient[] = [];
async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}
/** A second engine client on `db` whose transactions' connections may be killed (a dropped connection must fail the step, not crash the process). */
function killableClient(db: TestDatabase): PgSqlClient {
  const client = new PgSqlClient(db.url);
  clients.push(client);
  return client;
}
afterEach(async () => {
  for (const client of clients.splice(0)) await client.close();
  for (const db of databases.splice(0)) await db.drop();
});

const version = async (db: TestDatabase) => formatVersion((await readState(db.client)).version);

async function columnsOf(db: TestDatabase, table: string): Promise<string[]> {
  const result = await db.pool.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position`,
    [table],
  );
  return result.rows.map((r) => r.column_name);
}

async function indexState(db: TestDatabase, qualified: string) {
  const result = await db.pool.query<{ oid: number; valid: boolean }>(
    `SELECT i.indexrelid::int AS oid, i.indisvalid AS valid FROM pg_index i WHERE i.indexrelid = to_regclass($1)`,
    [qualified],
  );
  return result.rows[0];
}

function recording(ctx: RunContext): { ctx: RunContext; events: EngineEvent[] } {
  const events: EngineEvent[] = [];
  return { ctx: { ...ctx, onEvent: (e) => events.push(e) }, events };
}

describe('history', () => {
  it('records every step of an upgrade: id, phase, checksum, times, duration, rows, outcome and run id', async () => {
    const db = await freshDatabase();
    const catalog = await loadCatalog(DEMO_MIGRATIONS);
    await seedDemoDatabase(db.client, 500);
    const ctx = await startRun(db.client, 'history-run', { batchSize: 200 });
    const before = Date.now();
    await upgrade(ctx, catalog);
    const after = Date.now();

    const history = await readHistory(db.client, 'history-run');
    expect(history.map((h) => [h.stepId, h.phase, h.outcome])).toEqual(
      catalog.steps.map((s) => [s.id, s.phase, 'succeeded']),
    );
    const rows = Object.fromEntries(history.map((h) => [h.stepId, h.rowsAffected]));
    expect(rows).toEqual({
      bexar_expand01: undefined,
      bexar_expand02: undefined,
      bexar_expand03: undefined,
      bexar_migrate01: 500,
      bexar_migrate02: 500,
      bexar_migrate03: 50, // the seed pads every tenth name with spaces
      bexar_contract01: undefined,
      bexar_contract02: undefined,
      bexar_contract03: undefined,
    });
    const checksums = new Map(catalog.steps.map((s) => [s.id, s.checksum]));
    let previousStart = 0;
    for (const entry of history) {
      expect(entry.runId).toBe('history-run');
      expect(entry.checksum).toBe(checksums.get(entry.stepId));
      expect(entry.checksum).toMatch(/^sha256:[0-9a-f]{64}$/);
      expect(entry.error).toBeUndefined();
      expect(entry.finishedAt).toBeInstanceOf(Date);
      // Times come from this process's clock (expand03 runs outside a transaction: the database's clock, same host).
      expect(entry.startedAt.getTime()).toBeGreaterThanOrEqual(before - 50);
      expect(entry.finishedAt!.getTime()).toBeLessThanOrEqual(after + 50);
      expect(entry.finishedAt!.getTime()).toBeGreaterThanOrEqual(entry.startedAt.getTime());
      expect(entry.startedAt.getTime()).toBeGreaterThanOrEqual(previousStart);
      expect(entry.durationMs).toBeGreaterThanOrEqual(0);
      expect(Math.abs(entry.durationMs! - (entry.finishedAt!.getTime() - entry.startedAt.getTime()))).toBeLessThanOrEqual(2);
      previousStart = entry.startedAt.getTime();
    }
    expect(await readHistory(db.client, 'another-run')).toEqual([]);
    expect(await readHistory(db.client)).toEqual(history);
  });
});

describe('a no-transaction step (CREATE INDEX CONCURRENTLY)', () => {
  it('rebuilds an index whose build was killed half-way (connection terminated during the build)', async () => {
    const db = await freshDatabase();
    await installPause(db.pool);
    await db.pool.query(`CREATE TABLE things (id bigint PRIMARY KEY, v int)`);
    await db.pool.query(`INSERT INTO things SELECT g, g % 7 FROM generate_series(1, 50) g`);
    const catalog = await loadCatalog(
      writeMigrations({
        'r1/expand01_index_slow.sql':
          '-- emc:no-transaction\n' +
          "CREATE INDEX CONCURRENTLY IF NOT EXISTS things_slow_idx ON things (testctl.slow_key('build', id));\n",
      }),
    );
    const { ctx, events } = recording(await startRun(killableClient(db), 'kill-run'));
    await armPause(db.pool, 'build');
    const running = rejectionOf(expand(ctx, catalog));
    const killed = await killEngineBackendWhenSleeping(db.pool);
    expect(killed).toContain('things_slow_idx');
    const error = await running;
    expect(error).toBeInstanceOf(StepFailedError);
    expect((await indexState(db, 'public.things_slow_idx'))?.valid).toBe(false);
    expect(await version(db)).toBe('(none)');

    await disarmPause(db.pool, 'build');
    expect((await expand(ctx, catalog)).versionAfter).toBe('r1_expand01');
    expect(events.map((e) => e.type)).toContain('invalid-index-dropped');
    expect((await indexState(db, 'public.things_slow_idx'))?.valid).toBe(true);
  });
});

describe('re-running a phase after its connection died at a statement boundary', () => {
  const files = {
    'r1/expand01_create_gadgets.sql': 'CREATE TABLE gadgets (id bigint PRIMARY KEY, name text NOT NULL, legacy text);\n',
    'r1/expand02_columns.sql':
      'ALTER TABLE gadgets ADD COLUMN color text;\n' +
      "SELECT testctl.pause_at('e2');\n" +
      'ALTER TABLE gadgets ADD COLUMN size int;\n' +
      "CREATE FUNCTION gadgets_default_color() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN NEW.color := coalesce(NEW.color, 'grey'); RETURN NEW; END $$;\n" +
      'CREATE TRIGGER gadgets_default_color BEFORE INSERT ON gadgets FOR EACH ROW EXECUTE FUNCTION gadgets_default_color();\n',
    'r1/expand03_indexes.sql':
      '-- emc:no-transaction\n' +
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS gadgets_color_idx ON gadgets (color);\n' +
      "SELECT testctl.pause_at('e3');\n" +
      'CREATE INDEX CONCURRENTLY IF NOT EXISTS gadgets_size_idx ON gadgets (size);\n',
    'r1/contract01_drop_legacy.sql':
      'ALTER TABLE gadgets DROP COLUMN legacy;\n' +
      "SELECT testctl.pause_at('c1');\n" +
      'ALTER TABLE gadgets ALTER COLUMN color SET NOT NULL;\n',
  };

  async function prepare(db: TestDatabase, client: PgSqlClient = db.client) {
    await installPause(db.pool);
    return startRun(client, 'crash-run');
  }

  async function outcome(db: TestDatabase) {
    return {
      schema: await publicSchema(db.pool),
      version: await version(db),
      applied: (await db.pool.query(`SELECT step_id, checksum FROM emc.applied_step ORDER BY step_id`)).rows,
    };
  }

  it('converges to the same version and schema as an uninterrupted run', async () => {
    const catalog = await loadCatalog(writeMigrations(files));
    const reference = await freshDatabase();
    await upgrade(await prepare(reference), catalog);
    const expected = await outcome(reference);
    expect(expected.version).toBe('r1_expand03, r1_contract01');

    const db = await freshDatabase();
    const { ctx, events } = recording(await prepare(db, killableClient(db)));
    const crash = async (point: string, run: () => Promise<unknown>) => {
      await armPause(db.pool, point);
      const running = rejectionOf(run());
      const query = await killEngineBackendWhenSleeping(db.pool);
      expect(query).toContain(`pause_at('${point}')`);
      const error = await running;
      expect(error).toBeInstanceOf(StepFailedError);
      expect((error as StepFailedError).sqlState).toBe('57P01'); // terminated by administrator command
      await disarmPause(db.pool, point);
    };

    // Inside a transactional step: nothing of it survives.
    await crash('e2', () => expand(ctx, catalog));
    expect(await version(db)).toBe('r1_expand01');
    expect(await columnsOf(db, 'gadgets')).toEqual(['id', 'name', 'legacy']);

    // Between two statements of a no-transaction step: the first index stays, valid, and is skipped on re-run.
    await crash('e3', () => expand(ctx, catalog));
    expect(await version(db)).toBe('r1_expand02');
    expect((await indexState(db, 'public.gadgets_color_idx'))?.valid).toBe(true);
    expect(await indexState(db, 'public.gadgets_size_idx')).toBeUndefined();

    const resumed = await expand(ctx, catalog);
    expect(resumed.stepsRun.map((s) => s.stepId)).toEqual(['r1_expand03']);
    expect(events).toContainEqual({ type: 'index-already-built', stepId: 'r1_expand03', index: 'public.gadgets_color_idx' });

    await migrateToEnd(ctx, catalog);
    await crash('c1', () => contract(ctx, catalog, undefined, { drainConfirmed: true }));
    expect(await version(db)).toBe('r1_expand03');
    expect(await columnsOf(db, 'gadgets')).toContain('legacy');
    await contract(ctx, catalog, undefined, { drainConfirmed: true });

    expect(await outcome(db)).toEqual(expected);
    const history = await readHistory(db.client, 'crash-run');
    expect(history.map((h) => [h.stepId, h.outcome])).toEqual([
      ['r1_expand01', 'succeeded'],
      ['r1_expand02', 'failed'],
      ['r1_expand02', 'succeeded'],
      ['r1_expand03', 'failed'],
      ['r1_expand03', 'succeeded'],
      ['r1_contract01', 'failed'],
      ['r1_contract01', 'succeeded'],
    ]);
    expect(history.filter((h) => h.outcome === 'failed').every((h) => /terminat/i.test(h.error ?? ''))).toBe(true);
  });
});
