import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HAND_RUN_PREFIX } from '../bin/cli/phases.ts';
import { startDataApiEmulator, type DataApiEmulator } from '../bin/local/data-api-emulator/index.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { runEmc } from './support/cli-harness.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

// The phases by hand, one after the other on one database, each followed by `emc check`: the gates of the state
// machine's tasks hold, the lease is released after each run, and the history names the hand run.
let db: TestDatabase;
let emulator: DataApiEmulator;
beforeAll(async () => {
  db = await createTestDatabase();
  await seedDemoDatabase(db.client, 300);
  emulator = await startDataApiEmulator({ postgresUrl: db.url });
});
afterAll(async () => {
  await emulator.stop();
  await db.drop();
});

const emc = (command: string, ...args: string[]) => runEmc([command, '--database-url', db.url, '--migrations', DEMO_MIGRATIONS, ...args]);
const check = async () => (await emc('check')).exitCode;
const lease = async () => (await db.pool.query('SELECT owner FROM emc.lease')).rows;
const progress = async () =>
  Object.fromEntries(
    (await db.pool.query<{ step_id: string; rows_done: string }>('SELECT step_id, rows_done FROM emc.migrate_progress ORDER BY step_id')).rows.map(
      (r) => [r.step_id, Number(r.rows_done)],
    ),
  );

describe('emc expand, migrate and contract by hand', () => {
  it('refuses migrate before expand, and contract without a drain source, changing nothing', async () => {
    expect(await check()).toBe(3);
    const migrate = await emc('migrate');
    expect(migrate.exitCode).toBe(1);
    expect(migrate.stderr).toContain('emc: Migrate refused: expand steps are not applied yet: bexar_expand01, bexar_expand02, bexar_expand03.');

    const contract = await emc('contract');
    expect(contract.exitCode).toBe(2);
    expect(contract.stderr).toContain('emc contract needs a drain source: --drain-sessions <pattern>');
    expect(await check()).toBe(3);
    expect(await lease()).toEqual([]);
  });

  it('expands over the RDS Data API (the emulator), then check exits 4', async () => {
    for (const [name, value] of Object.entries(emulator.environment)) vi.stubEnv(name, value);
    try {
      const run = await runEmc([
        'expand',
        '--cluster-arn', 'arn:aws:rds:us-east-1:123456789012:cluster:shop',
        '--secret-arn', 'arn:aws:secretsmanager:us-east-1:123456789012:secret:shop-AbCdEf',
        '--database', db.name,
        '--migrations', DEMO_MIGRATIONS,
      ]);
      expect(run.stderr).toBe('');
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toContain('bexar_expand03: done in');
      expect(run.stdout).toMatch(/^Version bexar_expand03 \(was \(none\)\); run emc-cli:expand:\S+, lease released\.$/m);
      expect(emulator.calls.ExecuteStatement).toBeGreaterThan(0);
    } finally {
      vi.unstubAllEnvs();
    }
    expect(await check()).toBe(4);
    expect(await lease()).toEqual([]);
    const history = await db.pool.query<{ run_id: string; step_id: string; outcome: string }>('SELECT run_id, step_id, outcome FROM emc.history ORDER BY id');
    expect(history.rows.map((r) => [r.step_id, r.outcome])).toEqual([
      ['bexar_expand01', 'succeeded'],
      ['bexar_expand02', 'succeeded'],
      ['bexar_expand03', 'succeeded'],
    ]);
    expect(history.rows.every((r) => r.run_id.startsWith(HAND_RUN_PREFIX))).toBe(true);
  });

  it('migrates in two --max-seconds runs that resume where the last stopped (exit 4), then to the end', async () => {
    const first = await emc('migrate', '--max-seconds', '0.001', '--settings', '{"batchSize":50}');
    expect(first.exitCode).toBe(4);
    expect(first.stdout).toContain('bexar_migrate01: 50 rows done, 250 remaining');
    expect(first.stdout).toContain('Stopped by --max-seconds with rows left: run emc migrate again to resume.');
    expect(await progress()).toEqual({ bexar_migrate01: 50 });
    expect(await lease()).toEqual([]);
    expect(await check()).toBe(4);

    const second = await emc('migrate', '--max-seconds', '0.001', '--settings', '{"batchSize":50}');
    expect(second.exitCode).toBe(4);
    expect(second.stdout).toContain('bexar_migrate01: 100 rows done, 200 remaining');
    expect(await progress()).toEqual({ bexar_migrate01: 100 });
    expect(await check()).toBe(4);

    const rest = await emc('migrate', '--json');
    expect(rest.exitCode).toBe(0);
    expect(rest.json()).toMatchObject({ result: { finished: true }, summary: { outcome: 'stopped after migrate', versionAfter: 'bexar_expand03' } });
    expect(rest.stdout).not.toContain('"cursor"');
    expect(await check()).toBe(5);
  });

  it('refuses contract while a session of the old release is connected, and contracts once it is gone', async () => {
    const oldRelease = new pg.Client({ connectionString: db.url, application_name: 'demo-v1/web-1' });
    await oldRelease.connect();
    try {
      const refused = await emc('contract', '--drain-sessions', 'demo-v1/%');
      expect(refused.exitCode).toBe(1);
      expect(refused.stderr).toContain('emc: The old release did not drain within 0 s');
      expect(refused.stderr).toContain('1 session of "demo-v1/web-1" connected');
      expect(await check()).toBe(5);
      expect(await lease()).toEqual([]);
    } finally {
      await oldRelease.end();
    }
    const run = await emc('contract', '--drain-sessions', 'demo-v1/%');
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain("Drain: no session with application_name LIKE 'demo-v1/%' is connected: the old release is drained");
    expect(run.stdout).toContain('Version bexar_expand03, bexar_contract03 (was bexar_expand03)');
    expect(await check()).toBe(0);
    expect(await lease()).toEqual([]);
  });
});
