import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runLocalDemo, type LocalDemoResult } from '../bin/local/local-demo.ts';
import { STATE_NAMES } from '../lambdas/core/workflow/state-names.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

/**
 * What `npm start` shows, on a small table: the synthesized state machine upgrades the demo database while
 * release n-1 and release n write through their own columns; the drain gate waits for n-1 to go.
 */
describe('npm start (the local demo)', () => {
  let db: TestDatabase;
  let result: LocalDemoResult;
  const lines: string[] = [];

  beforeAll(async () => {
    db = await createTestDatabase();
    result = await runLocalDemo({ databaseUrl: db.url, rows: 5_000, out: (line) => lines.push(line) });
  }, 180_000);
  afterAll(async () => {
    await db.drop();
  });

  it('succeeds with no failed and no lost write from either release', () => {
    expect(result.execution.status).toBe('SUCCEEDED');
    expect(result.succeeded).toBe(true);
    expect(result.workloads.map((w) => w.release)).toEqual(['old', 'new']);
    for (const workload of result.workloads) {
      expect(workload.attempted).toBeGreaterThan(10);
      expect(workload).toMatchObject({ failed: 0, lost: 0 });
    }
    expect(lines.at(-1)).toBe('Upgrade completed with no failed and no lost write.');
  });

  it('shows the drain gate waiting for the old release, then seeing it go', () => {
    const drainOutputs = result.execution.events
      .filter((e) => e.type === 'StateExited' && 'state' in e && e.state.name === STATE_NAMES.drain)
      .map((e) => (e as unknown as { state: { output: { drain: { drained: boolean; summary: string } } } }).state.output.drain);
    expect(drainOutputs.length).toBeGreaterThanOrEqual(2);
    expect(drainOutputs[0]!.drained).toBe(false);
    expect(drainOutputs[0]!.summary).toMatch(/session of "demo-app-old" connected/);
    expect(drainOutputs.at(-1)!.drained).toBe(true);
    expect(lines.some((l) => l.startsWith('  -> Wait for old tasks to drain'))).toBe(true);
  });

  it('prints the composite version after every step as in the Glance table', () => {
    expect(result.versions.map((v) => [v.stage, v.identifier])).toEqual([
      ['E', 'bexar_expand01'],
      ['E', 'bexar_expand02'],
      ['E', 'bexar_expand03'],
      ['M', 'bexar_expand03'],
      ['M', 'bexar_expand03'],
      ['M', 'bexar_expand03'],
      ['C', 'bexar_expand03, bexar_contract01'],
      ['C', 'bexar_expand03, bexar_contract02'],
      ['C', 'bexar_expand03, bexar_contract03'],
    ]);
    const table = lines.findIndex((l) => l.startsWith('Database version after each step'));
    expect(lines[table + 3]).toMatch(/^ {2}E {6}bexar_expand01 +upgrade begins$/);
    expect(lines.some((l) => /^ {2}bexar_migrate01 +migrate +succeeded/.test(l))).toBe(true);
  });
});
