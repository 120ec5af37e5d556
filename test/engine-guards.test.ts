import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  CatalogOrderError,
  contract,
  DatabaseAheadError,
  DriftError,
  expand,
  formatVersion,
  InputError,
  loadCatalog,
  migrate,
  PhaseGateError,
  type GateReason,
  plan,
  readHistory,
  readState,
  type Catalog,
  type RunContext,
} from '../lambdas/core/index.ts';
import { applySteps } from '../lambdas/core/steps/run-steps.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { migrateToEnd, startRun, upgrade } from './support/engine.ts';
import { engineState, publicSchema, rejectionOf, tableRows } from './support/engine-faults.ts';

const databases: TestDatabase[] = [];
async function freshDatabase(): Promise<TestDatabase> {
  const db = await createTestDatabase();
  databases.push(db);
  return db;
}
afterEach(async () => {
  for (const db of databases.splice(0)) await db.drop();
});

let demo: Catalog;
beforeAll(async () => {
  demo = await loadCatalog(DEMO_MIGRATIONS);
});

const version = async (db: TestDatabase) => formatVersion((await readState(db.client)).version);

/** Everything a refused call must leave as it was: schema, the application's rows, the tool's state and history. */
async function snapshot(db: TestDatabase, tables: string[]) {
  const rows: Record<string, unknown[]> = {};
  for (const table of tables) rows[table] = await tableRows(db.pool, table);
  return { schema: await publicSchema(db.pool), rows, engine: await engineState(db.pool) };
}

async function expectRefused<E extends Error>(
  db: TestDatabase,
  tables: string[],
  errorClass: new (...args: never[]) => E,
  call: () => Promise<unknown>,
): Promise<E> {
  const before = await snapshot(db, tables);
  const error = await rejectionOf(call());
  expect(error).toBeInstanceOf(errorClass);
  expect(await snapshot(db, tables)).toEqual(before);
  return error as E;
}

describe('phase gates', () => {
  it('refuse contract until expand is at the head, migrations are done and the old release is drained', async () => {
    const db = await freshDatabase();
    await seedDemoDatabase(db.client, 300);
    const ctx = await startRun(db.client, 'gate-run', { batchSize: 100 });
    const drained = { drainConfirmed: true };
    const refuseContract = async (options: { drainConfirmed: boolean }, reasons: GateReason[], message: RegExp) => {
      const error = await expectRefused(db, ['images'], PhaseGateError, () => contract(ctx, demo, undefined, options));
      expect(error.phase).toBe('contract');
      expect(error.transient).toBe(false);
      expect(error.reasons).toEqual(reasons);
      expect(error.message).toMatch(message);
      return error;
    };
    const allMigrations = ['bexar_migrate01', 'bexar_migrate02', 'bexar_migrate03'];

    await refuseContract(
      drained,
      [
        { kind: 'expand-pending', steps: ['bexar_expand01', 'bexar_expand02', 'bexar_expand03'] },
        { kind: 'migrate-unfinished', steps: allMigrations },
      ],
      /expand steps are not applied yet: bexar_expand01, bexar_expand02, bexar_expand03; migrations are not finished/,
    );

    // Expand not at the target's head: contract and migrate are both refused.
    await applySteps(ctx, demo.steps.filter((s) => s.id === 'bexar_expand01'));
    await refuseContract(
      drained,
      [
        { kind: 'expand-pending', steps: ['bexar_expand02', 'bexar_expand03'] },
        { kind: 'migrate-unfinished', steps: allMigrations },
      ],
      /expand steps are not applied yet: bexar_expand02, bexar_expand03/,
    );
    const migrateRefused = await expectRefused(db, ['images'], PhaseGateError, () => migrate(ctx, demo));
    expect(migrateRefused.phase).toBe('migrate');
    expect(migrateRefused.reasons).toEqual([{ kind: 'expand-pending', steps: ['bexar_expand02', 'bexar_expand03'] }]);
    expect(migrateRefused.message).toBe('Migrate refused: expand steps are not applied yet: bexar_expand02, bexar_expand03.');
    expect(await version(db)).toBe('bexar_expand01');

    await expand(ctx, demo);
    await refuseContract(
      drained,
      [{ kind: 'migrate-unfinished', steps: allMigrations }],
      /migrations are not finished: bexar_migrate01, bexar_migrate02, bexar_migrate03/,
    );

    // Half-way: migrate01 done, the others not (short calls of at most ten paused batches of 20 rows).
    const slow = { ...ctx, settings: { ...ctx.settings, batchSize: 20, batchPauseMs: 100, migrateBudgetMs: 1000 } };
    const calls = await migrateToEnd(slow, demo, { until: (r) => r.stepsFinished.includes('bexar_migrate01') });
    expect(calls.at(-1)!.finished).toBe(false);
    const midway = await refuseContract(
      drained,
      [{ kind: 'migrate-unfinished', steps: ['bexar_migrate02', 'bexar_migrate03'] }],
      /migrations are not finished: bexar_migrate02, bexar_migrate03/,
    );
    expect(midway.message).not.toContain('bexar_migrate01');

    await migrateToEnd(ctx, demo);
    await refuseContract(
      { drainConfirmed: false },
      [{ kind: 'not-drained' }],
      /^Contract refused: the old release has not been confirmed drained \(tasks of it may still be running\)\.$/,
    );
    expect(await version(db)).toBe('bexar_expand03');

    const done = await contract(ctx, demo, undefined, drained);
    expect(done.versionAfter).toBe('bexar_expand03, bexar_contract03');
  });
});

/** The demo migrations as a files map, for copies with one file changed. */
function demoFiles(): Record<string, string> {
  const files: Record<string, string> = {};
  for (const name of readdirSync(join(DEMO_MIGRATIONS, 'bexar'))) {
    files[`bexar/${name}`] = readFileSync(join(DEMO_MIGRATIONS, 'bexar', name), 'utf8');
  }
  return files;
}

describe('checks of the database against the catalog', () => {
  it('refuse an applied file that changed since (drift), naming the step and both checksums', async () => {
    const db = await freshDatabase();
    await seedDemoDatabase(db.client, 100);
    const ctx = await startRun(db.client, 'drift-run');
    await expand(ctx, demo);
    const original = demo.steps.find((s) => s.id === 'bexar_expand02')!.checksum;

    const files = demoFiles();
    files['bexar/expand02_add_owner_id.sql'] += '\n-- an innocent-looking edit after the fact\n';
    const edited = await loadCatalog(writeMigrations(files));
    const changed = edited.steps.find((s) => s.id === 'bexar_expand02')!.checksum;
    expect(changed).not.toBe(original);

    for (const call of [
      () => expand(ctx, edited),
      () => migrate(ctx, edited),
      () => contract(ctx, edited, undefined, { drainConfirmed: true }),
      () => plan(db.client, edited),
    ]) {
      const error = await expectRefused(db, ['images'], DriftError, call);
      expect(error.drifted).toEqual([{ stepId: 'bexar_expand02', appliedChecksum: original, fileChecksum: changed }]);
      expect(error.message).toContain('bexar_expand02');
      expect(error.message).toContain(original);
      expect(error.message).toContain(changed);
    }
    // With the file restored, the upgrade goes on.
    await migrateToEnd(ctx, demo);
    expect((await contract(ctx, demo, undefined, { drainConfirmed: true })).versionAfter).toBe('bexar_expand03, bexar_contract03');
  });

  const twoReleases = {
    'r1/expand01_create_a1.sql': 'CREATE TABLE a1 (id int PRIMARY KEY);\n',
    'r2/expand01_create_a2.sql': 'CREATE TABLE a2 (id int PRIMARY KEY);\n',
  };

  it('refuse a database newer than the code (DatabaseAheadError naming the unknown step)', async () => {
    const db = await freshDatabase();
    const ctx = await startRun(db.client, 'ahead-run');
    await upgrade(ctx, await loadCatalog(writeMigrations(twoReleases, ['r1', 'r2'])));
    expect(await version(db)).toBe('r2_expand01');

    const older = await loadCatalog(writeMigrations({ 'r1/expand01_create_a1.sql': twoReleases['r1/expand01_create_a1.sql'] }));
    for (const call of [
      () => expand(ctx, older),
      () => migrate(ctx, older),
      () => contract(ctx, older, undefined, { drainConfirmed: true }),
      () => plan(db.client, older),
    ]) {
      const error = await expectRefused(db, ['a1', 'a2'], DatabaseAheadError, call);
      expect(error.message).toContain('r2_expand01');
      expect(error.transient).toBe(false);
    }
  });

  it('refuse a step inserted before an applied one (CatalogOrderError naming both)', async () => {
    const db = await freshDatabase();
    const ctx = await startRun(db.client, 'order-run');
    await upgrade(ctx, await loadCatalog(writeMigrations(twoReleases, ['r1', 'r2'])));

    const inserted = await loadCatalog(
      writeMigrations({ ...twoReleases, 'r1/expand02_create_a3.sql': 'CREATE TABLE a3 (id int PRIMARY KEY);\n' }, ['r1', 'r2']),
    );
    for (const call of [() => expand(ctx, inserted), () => plan(db.client, inserted)]) {
      const error = await expectRefused(db, ['a1', 'a2'], CatalogOrderError, call);
      expect(error.message).toContain('r1_expand02');
      expect(error.message).toContain('r1/expand02_create_a3.sql');
      expect(error.message).toContain('r2_expand01');
    }
    expect(await db.pool.query(`SELECT to_regclass('a3') AS t`)).toMatchObject({ rows: [{ t: null }] });
  });

  it('refuse an unknown target release with InputError, before touching the database', async () => {
    const db = await freshDatabase();
    await seedDemoDatabase(db.client, 10);
    const ctx = await startRun(db.client, 'input-run');
    for (const call of [
      () => expand(ctx, demo, 'cactus'),
      () => migrate(ctx, demo, 'cactus'),
      () => contract(ctx, demo, 'cactus', { drainConfirmed: true }),
      () => plan(db.client, demo, 'cactus'),
    ]) {
      const error = await expectRefused(db, ['images'], InputError, call);
      expect(error.message).toContain('"cactus"');
      expect(error.message).toContain('"bexar"');
    }
  });
});

describe('upgrading to a target release', () => {
  const files = {
    'r1/expand01_add_status.sql': 'ALTER TABLE items ADD COLUMN status text;\n',
    'r1/expand02_index_status.sql': 'CREATE INDEX items_status_idx ON items (status);\n',
    'r1/migrate01_fill_status.sql':
      '-- emc:keyset table=items key=id\n' +
      '-- emc:pending SELECT count(*) FROM items WHERE status IS NULL\n' +
      "UPDATE items SET status = CASE WHEN legacy_flag THEN 'on' ELSE 'off' END\n" +
      'WHERE id BETWEEN :from_key AND :to_key AND status IS NULL;\n',
    'r1/contract01_drop_legacy.sql': 'ALTER TABLE items DROP COLUMN legacy_flag;\n',
    'r2/expand01_add_note.sql': 'ALTER TABLE items ADD COLUMN note text;\n',
    'r2/migrate01_fill_note.sql':
      '-- emc:repeat-until-zero\n' +
      '-- emc:pending SELECT count(*) FROM items WHERE note IS NULL\n' +
      "UPDATE items SET note = 'note:' || status WHERE id = ANY (ARRAY(SELECT id FROM items WHERE note IS NULL LIMIT :batch_size));\n",
    'r2/contract01_require_note.sql': 'ALTER TABLE items ALTER COLUMN note SET NOT NULL;\n',
  };

  async function itemsDatabase(): Promise<{ db: TestDatabase; ctx: RunContext; catalog: Catalog }> {
    const db = await freshDatabase();
    await db.pool.query(`CREATE TABLE items (id bigint PRIMARY KEY, legacy_flag boolean NOT NULL DEFAULT false)`);
    await db.pool.query(`INSERT INTO items SELECT g, g % 2 = 0 FROM generate_series(1, 120) g`);
    const ctx = await startRun(db.client, 'target-run', { batchSize: 50 });
    return { db, ctx, catalog: await loadCatalog(writeMigrations(files, ['r1', 'r2'])) };
  }

  const columns = async (db: TestDatabase) =>
    (
      await db.pool.query<{ column_name: string }>(
        `SELECT column_name FROM information_schema.columns WHERE table_name = 'items' ORDER BY ordinal_position`,
      )
    ).rows.map((r) => r.column_name);

  it('applies every pending step up to the target in order, then the next release', async () => {
    const { db, ctx, catalog } = await itemsDatabase();

    await upgrade(ctx, catalog, 'r1');
    expect(await version(db)).toBe('r1_expand02, r1_contract01');
    expect((await readHistory(db.client)).map((h) => h.stepId)).toEqual([
      'r1_expand01',
      'r1_expand02',
      'r1_migrate01',
      'r1_contract01',
    ]);
    expect(await columns(db)).toEqual(['id', 'status']);
    const r1Plan = await plan(db.client, catalog, 'r1');
    expect(r1Plan.nextPhase).toBeNull();
    expect((await plan(db.client, catalog)).pending.expand.map((s) => s.stepId)).toEqual(['r2_expand01']);

    await upgrade(ctx, catalog);
    expect(await version(db)).toBe('r2_expand01, r2_contract01');
    expect((await readHistory(db.client)).map((h) => h.stepId).slice(4)).toEqual([
      'r2_expand01',
      'r2_migrate01',
      'r2_contract01',
    ]);
    const items = await db.pool.query(`SELECT id, status, note FROM items ORDER BY id`);
    expect(items.rows).toHaveLength(120);
    for (const row of items.rows) {
      const status = Number(row.id) % 2 === 0 ? 'on' : 'off';
      expect(row).toEqual({ id: row.id, status, note: `note:${status}` });
    }
  });

  it('to a later release from scratch: all expands of both releases, then all migrates, then all contracts', async () => {
    const { db, ctx, catalog } = await itemsDatabase();
    await upgrade(ctx, catalog, 'r2');
    expect((await readHistory(db.client)).map((h) => h.stepId)).toEqual([
      'r1_expand01',
      'r1_expand02',
      'r2_expand01',
      'r1_migrate01',
      'r2_migrate01',
      'r1_contract01',
      'r2_contract01',
    ]);
    expect(await version(db)).toBe('r2_expand01, r2_contract01');
    expect(await columns(db)).toEqual(['id', 'status', 'note']);
  });
});
