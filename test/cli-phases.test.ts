import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { HAND_RUN_PREFIX } from '../bin/cli/phases.ts';
import { startDataApiEmulator, type DataApiEmulator } from '../bin/local/data-api-emulator/index.ts';
import { seedDemoDatabase } from '../bin/local/demo-database.ts';
import { acquireLease } from '../lambdas/core/state/lease.ts';
import { ensureStateSchema } from '../lambdas/core/state/schema.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';
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
/** The same command through the RDS Data API (the emulator in front of the same database). */
async function overDataApi(command: string, ...args: string[]) {
  for (const [name, value] of Object.entries(emulator.environment)) vi.stubEnv(name, value);
  try {
    return await runEmc([
      command,
      ...['--cluster-arn', 'arn:aws:rds:us-east-1:123456789012:cluster:shop', '--secret-arn', 'arn:aws:secretsmanager:us-east-1:123456789012:secret:shop-AbCdEf'],
      ...['--database', db.name, '--migrations', DEMO_MIGRATIONS, ...args],
    ]);
  } finally {
    vi.unstubAllEnvs();
  }
}
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
    const run = await overDataApi('expand');
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain('bexar_expand03: done in');
    expect(run.stdout).toMatch(/^Version bexar_expand03 \(was \(none\)\); run emc-cli:expand:\S+, lease released\.$/m);
    expect(emulator.calls.ExecuteStatement).toBeGreaterThan(0);
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

  it('refuses contract while migrate steps are pending, before waiting for the drain, changing nothing', async () => {
    const oldRelease = new pg.Client({ connectionString: db.url, application_name: 'demo-v1/web-1' });
    await oldRelease.connect();
    try {
      const early = await emc('contract', '--drain-sessions', 'demo-v1/%', '--drain-timeout', '600');
      expect(early.exitCode).toBe(1);
      expect(early.stderr).toContain('emc: Contract refused: migrations are not finished: bexar_migrate01, bexar_migrate02, bexar_migrate03.');
    } finally {
      await oldRelease.end();
    }
    expect(await check()).toBe(4);
    expect(await lease()).toEqual([]);
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
    const lastCall = rest.json<{ result: { calls: { steps: unknown[] }[] } }>().result.calls.at(-1);
    expect(lastCall?.steps).toContainEqual(expect.objectContaining({ stepId: 'bexar_migrate03', finished: true }));
    expect(rest.stdout).not.toContain('"cursor"');
    expect(await check()).toBe(5);
  });

  it('refuses contract while a session of the old release is connected, and contracts once it is gone (over the Data API)', async () => {
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
    // The drain gate's session query, and the contract steps, over the Data API.
    const calls = emulator.calls.ExecuteStatement;
    const run = await overDataApi('contract', '--drain-sessions', 'demo-v1/%');
    expect(emulator.calls.ExecuteStatement).toBeGreaterThan(calls);
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain("Drain: no session with application_name LIKE 'demo-v1/%' is connected: the old release is drained");
    expect(run.stdout).toContain('Version bexar_expand03, bexar_contract03 (was bexar_expand03)');
    expect(await check()).toBe(0);
    expect(await lease()).toEqual([]);
  });
});

describe('a phase by hand that is refused or fails', () => {
  let own: TestDatabase;
  beforeAll(async () => {
    own = await createTestDatabase();
    await own.pool.query('CREATE TABLE notes (id bigint PRIMARY KEY, body text)');
  });
  afterAll(async () => {
    await own.drop();
  });
  const FAILING = 'ALTER TABLE missing_table ADD COLUMN title text;\n';
  const dir = writeMigrations({
    'v2/expand01_add_body_length.sql': 'ALTER TABLE notes ADD COLUMN body_length integer;\n',
    'v2/expand02_add_title.sql': FAILING,
  });
  const run = (...args: string[]) => runEmc([...args, '--database-url', own.url, '--migrations', dir]);
  const owner = async () => (await own.pool.query<{ owner: string }>('SELECT owner FROM emc.lease')).rows.map((r) => r.owner);

  it('refuses bad settings before anything is written, naming the setting', async () => {
    const bad = await run('expand', '--settings', '{"batchSize":-1}');
    expect(bad.exitCode).toBe(2);
    expect(bad.stderr).toContain('emc: Invalid execution input: "settings.batchSize": Too small');
    expect((await own.pool.query("SELECT to_regnamespace('emc') AS emc")).rows).toEqual([{ emc: null }]);
    expect((await run('check')).exitCode).toBe(3);
  });

  it('refuses to run while an execution holds the lease, changing nothing', async () => {
    const execution = 'arn:aws:states:eu-west-1:123456789012:execution:UpgradeStateMachine:emc-v2-full-0a1b2c3d';
    await ensureStateSchema(own.client);
    await acquireLease(own.client, execution, 900);
    try {
      const held = await run('expand');
      expect(held.exitCode).toBe(1);
      expect(held.stderr).toContain(`emc: The upgrade lease is held by ${execution}`);
      expect(held.stderr).toContain('once it has ended, emc unlock releases it at once');
      expect(await owner()).toEqual([execution]);
      expect((await own.pool.query('SELECT count(*)::int AS n FROM emc.history')).rows).toEqual([{ n: 0 }]);
    } finally {
      await own.pool.query('DELETE FROM emc.lease');
    }
  });

  it('reports a failed step with its file, releases the lease, and a re-run after the fix goes on from that step', async () => {
    const failed = await run('expand');
    expect(failed.exitCode).toBe(1);
    expect(failed.stdout).toContain('v2_expand01: done in');
    expect(failed.stdout).toContain('v2_expand02: failed');
    expect(failed.stderr).toContain('v2/expand02_add_title.sql');
    expect(failed.stderr).toContain('missing_table');
    expect(await owner()).toEqual([]);
    expect((await run('check')).exitCode).toBe(3);

    writeFileSync(join(dir, 'v2/expand02_add_title.sql'), 'ALTER TABLE notes ADD COLUMN title text;\n');
    const fixed = await run('expand');
    expect(fixed.stderr).toBe('');
    expect(fixed.exitCode).toBe(0);
    expect(fixed.stdout).not.toContain('v2_expand01:');
    expect(fixed.stdout).toContain('Version v2_expand02 (was v2_expand01)');
    const history = await own.pool.query<{ step_id: string; outcome: string }>('SELECT step_id, outcome FROM emc.history ORDER BY id');
    expect(history.rows.map((r) => [r.step_id, r.outcome])).toEqual([
      ['v2_expand01', 'succeeded'],
      ['v2_expand02', 'failed'],
      ['v2_expand02', 'succeeded'],
    ]);
    expect((await run('check')).exitCode).toBe(0);
  });
});
