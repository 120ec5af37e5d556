import './support/quiet-handler-logs.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { DemoWorkload, type WorkloadReport } from '../bin/local/demo-workloads.ts';
import { runLocalExecution, type EventLog, type LocalExecutionResult } from '../bin/local/run-local-execution.ts';
import type { SettingsOverrides } from '../lambdas/core/settings.ts';
import { STATE_NAMES } from '../lambdas/core/workflow/state-names.ts';
import { DrainSource } from '../lib/drain-source.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';
import { recordFigures, type Figure } from './support/reliability-figures.ts';
import type { WriterReport } from '../bin/local/application-writer.ts';
import { bexarAndCactus, releaseWriter, splitName, wrongRows, type CactusRow } from './support/release-writers.ts';

/**
 * Mixed-version traffic through whole executions of the synthesized state machine, its drain gate watching the
 * database sessions of the old release:
 * 1. the demo release bexar (is_public -> visibility, owner -> owner_id), with the demo's release n-1 and release n
 *    workloads (bin/local/demo-workloads.ts) writing throughout;
 * 2. then the fixture release cactus (name -> title + extension, test/fixtures/cactus-release), with a bexar writer
 *    (writes `name`) from the start until the drain gate waits for it, and a cactus writer (writes `title`,
 *    `extension`) from migrate to past the end.
 * Every write must succeed, and every row must end as its writer last wrote it, checked row by row.
 */
const SEEDED = 2000;
const SETTINGS: SettingsOverrides = { migrateBudgetMs: 1000, batchSize: 200, batchPauseMs: 150 };
const figures: Figure[] = [];

let db: TestDatabase;
let migrations: string;
beforeAll(async () => {
  db = await createTestDatabase();
  await seedDemoDatabase(db.client, SEEDED);
  migrations = bexarAndCactus();
});
afterAll(async () => {
  await recordFigures('mixed-version traffic', 'test/reliability-mixed-traffic.test.ts', figures);
  await db.drop();
});

function execute(input: unknown, drainPattern: string, onEvent: (event: EventLog) => void): Promise<LocalExecutionResult> {
  return runLocalExecution({
    databaseUrl: db.url,
    migrationsDirectory: migrations,
    drainSource: DrainSource.databaseSessions(drainPattern),
    input,
    settings: SETTINGS,
    waitMs: 50,
    retryMs: 50,
    onEvent,
  });
}

const entered = (event: EventLog, state: string) => event.type === 'StateEntered' && event.state.name === state;

async function columnsOfImages(): Promise<string[]> {
  const result = await db.pool.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = 'public' AND table_name = 'images' ORDER BY ordinal_position`,
  );
  return result.rows.map((r) => r.column_name);
}

describe('two releases of the application writing while the upgrade runs', () => {
  it('bexar: release n-1 (is_public, owner) and release n (visibility, owner_id) lose and fail no write', async () => {
    const oldRelease = new DemoWorkload('old', db.url, 2);
    const newRelease = new DemoWorkload('new', db.url, 2);
    let oldStopped: Promise<void> | undefined;
    let contractAt = 0;
    let oldGoneAt = 0;
    oldRelease.start();
    const result = await execute({ targetRelease: 'bexar' }, 'demo-app-old%', (event) => {
      if (entered(event, STATE_NAMES.migrate)) newRelease.start();
      if (entered(event, 'Start waiting for old release to drain')) {
        oldStopped ??= oldRelease.stop().then(() => void (oldGoneAt = Date.now()));
      }
      if (entered(event, STATE_NAMES.contract)) contractAt = Date.now();
    });
    await oldStopped;
    await newRelease.stop();

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(result.output).toMatchObject({ versionAfter: 'bexar_expand03, bexar_contract03' });
    // The drain gate let contract start only once the old release's sessions were gone.
    expect(oldGoneAt).toBeGreaterThan(0);
    expect(contractAt).toBeGreaterThanOrEqual(oldGoneAt);
    const reports = [await oldRelease.verify(db.url), await newRelease.verify(db.url)];
    for (const report of reports) figures.push(demoFigure(report));
    expect(reports.map((r) => ({ release: r.release, failed: r.failed, lost: r.lost, errors: r.errors }))).toEqual([
      { release: 'old', failed: 0, lost: 0, errors: [] },
      { release: 'new', failed: 0, lost: 0, errors: [] },
    ]);
    expect(reports.every((r) => r.attempted > 20)).toBe(true);
    // Every seeded row too: nobody but the seed wrote ids up to SEEDED except the workloads' own inserts (higher ids).
    const seeded = await db.pool.query<{ bad: number }>(
      `SELECT count(*)::int AS bad FROM images WHERE id <= $1 AND (visibility IS DISTINCT FROM CASE WHEN id % 3 = 0 THEN 'public' ELSE 'private' END
         OR owner_id IS DISTINCT FROM 'tenant-' || (id % 500) OR name <> btrim(name))`,
      [SEEDED],
    );
    expect(seeded.rows[0]!.bad).toBe(0);
  });

  it('cactus: release bexar (name) and release cactus (title, extension) lose and fail no write, row by row', async () => {
    // Release bexar's users gave some images a file extension before cactus ships.
    await db.pool.query(`UPDATE images SET name = name || '.png' WHERE id % 4 = 1`);
    const ledger = new Map<number, CactusRow>();
    const current = await db.pool.query<{ id: string; name: string; visibility: 'public' | 'private'; owner_id: string }>(
      `SELECT id::text, name, visibility, owner_id FROM images ORDER BY id`,
    );
    for (const row of current.rows) {
      ledger.set(Number(row.id), { ...splitName(row.name), visibility: row.visibility, owner_id: row.owner_id });
    }
    const ids = [...ledger.keys()];
    const bexar = releaseWriter('bexar', db.url, 'images-bexar-v1', ids.filter((id) => id % 2 === 0), ledger, 11);
    const cactus = releaseWriter('cactus', db.url, 'images-cactus-v1', ids.filter((id) => id % 2 === 1), ledger, 12);
    const writers = [bexar, cactus];
    const phaseOf: Record<string, string> = {
      [STATE_NAMES.start]: 'start',
      [STATE_NAMES.expand]: 'expand',
      [STATE_NAMES.migrate]: 'migrate',
      'Start waiting for old release to drain': 'drain',
      [STATE_NAMES.contract]: 'contract',
      [STATE_NAMES.finish]: 'finish',
    };
    let bexarStopped: Promise<unknown> | undefined;
    let contractAt = 0;
    bexar.start();
    const result = await execute({}, 'images-bexar%', (event) => {
      if (event.type !== 'StateEntered') return;
      const phase = phaseOf[event.state.name];
      if (phase) for (const w of writers) w.phase = phase;
      if (phase === 'migrate') cactus.start();
      if (phase === 'drain') bexarStopped ??= bexar.stop();
      if (phase === 'contract') contractAt = Date.now();
    });
    for (const w of writers) w.phase = 'after';
    await new Promise((resolve) => setTimeout(resolve, 100));
    await bexarStopped;
    await cactus.stop();

    expect(result.status, result.cause).toBe('SUCCEEDED');
    expect(result.output).toMatchObject({ versionBefore: 'bexar_expand03, bexar_contract03', versionAfter: 'cactus_expand02, cactus_contract02' });
    expect(await columnsOfImages()).toEqual(['id', 'created_at', 'visibility', 'owner_id', 'title', 'extension']);
    expect(bexar.stoppedAt).toBeDefined();
    expect(contractAt).toBeGreaterThanOrEqual(bexar.stoppedAt!);

    const reports = writers.map((w) => w.report());
    for (const report of reports) figures.push(writerFigure(report));
    expect(reports.map((r) => ({ writer: r.applicationName, failed: r.failed, errors: r.errors }))).toEqual([
      { writer: 'images-bexar-v1', failed: 0, errors: [] },
      { writer: 'images-cactus-v1', failed: 0, errors: [] },
    ]);
    // Both releases wrote while migrate ran; the cactus release wrote on after the old columns were gone.
    expect(reports[0]!.byPhase.migrate).toBeGreaterThan(10);
    expect(reports[1]!.byPhase.migrate).toBeGreaterThan(10);
    expect((reports[1]!.byPhase.contract ?? 0) + (reports[1]!.byPhase.finish ?? 0) + (reports[1]!.byPhase.after ?? 0)).toBeGreaterThan(0);
    expect(reports.every((r) => r.inserts > 0)).toBe(true);

    const wrong = await wrongRows(db.pool, ledger);
    expect(wrong.slice(0, 10)).toEqual([]);
    expect(ledger.size).toBe(current.rows.length + reports[0]!.inserts + reports[1]!.inserts);
    figures.push({
      check: 'cactus: rows checked one by one against the writers\' ledgers after the upgrade',
      tried: ledger.size,
      passed: ledger.size - wrong.length,
      detail: `${current.rows.length} rows before cactus plus ${reports[0]!.inserts + reports[1]!.inserts} inserted during it; missing, extra or wrong rows: ${wrong.length}`,
    });
  });
});

function demoFigure(report: WorkloadReport): Figure {
  const release = report.release === 'old' ? 'bexar: release n-1 (writes is_public, owner) until drained' : 'bexar: release n (writes visibility, owner_id) from migrate on';
  return {
    check: release,
    tried: report.attempted,
    passed: report.attempted - report.failed,
    detail: `failed writes ${report.failed}; rows whose last write was lost or changed ${report.lost}`,
  };
}

function writerFigure(report: WriterReport): Figure {
  const release = report.applicationName === 'images-bexar-v1' ? 'cactus: release bexar (writes name) until drained' : 'cactus: release cactus (writes title, extension) from migrate on';
  const phases = Object.entries(report.byPhase).map(([phase, n]) => `${phase} ${n}`).join(', ');
  return {
    check: release,
    tried: report.attempted,
    passed: report.succeeded,
    detail: `failed writes ${report.failed}; ${report.inserts} inserts; successful writes while each task ran: ${phases}`,
  };
}
