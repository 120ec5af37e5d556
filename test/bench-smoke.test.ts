import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { num } from '../bench/lib/stats.ts';
import { HEADINGS, runBenchmark } from '../bench/run.ts';
import { DEFAULT_SETTINGS } from '../lambdas/core/index.ts';

// A smoke test of `npm run bench`: the whole benchmark at its tiny size, in-process, writing to a temporary file.
// It proves every section still runs and reports figures; it asserts nothing about how fast anything is.
const directory = mkdtempSync(join(tmpdir(), 'emc-bench-smoke-'));
afterAll(() => rmSync(directory, { recursive: true, force: true }));

describe('the benchmark', () => {
  it('runs every section at a tiny size and writes a report with each heading', async () => {
    const outputPath = join(directory, 'benchmarks.md');
    const result = await runBenchmark({ size: 'tiny', outputPath, log: () => {} });

    expect(result.throughput.contenders.map((c) => c.key)).toEqual(['single', 'keyset', 'keyset-bare', 'naive', 'naive-rescan']);
    for (const contender of result.throughput.contenders) {
      expect(contender.rows).toBe(result.sizes.migrateRows);
      expect(contender.rowsPerSecond).toBeGreaterThan(0);
    }
    expect(result.throughput.keysetRatio).toBeGreaterThan(0);
    expect(result.throughput.perBatch.map((p) => p.key)).toEqual(['keyset', 'keyset-bare', 'naive', 'naive-rescan']);
    expect(Number.isFinite(result.throughput.keysetBatchRatio)).toBe(true);

    expect(result.impact.runs.map((r) => r.key)).toEqual(['idle', 'keyset-default', 'keyset-nopause', 'single']);
    for (const run of result.impact.runs) {
      expect(run.writer.statements).toBeGreaterThan(0);
      expect(Number.isFinite(run.writer.p99Ms)).toBe(true);
    }
    for (const run of result.impact.runs.slice(1)) expect(run.migrate!.rowsPerSecond).toBeGreaterThan(0);

    expect(result.transitions.runs.map((r) => r.rows)).toEqual(result.sizes.executionRows);
    for (const run of result.transitions.runs) {
      expect(run.status).toBe('SUCCEEDED');
      expect(run.migrateCalls).toBeGreaterThan(0);
      expect(run.transitions).toBeGreaterThan(run.loopTransitions);
    }

    expect(result.bundles.bundles.map((b) => b.handler)).toContain('migrate');
    for (const bundle of result.bundles.bundles) expect(bundle.bytes).toBeGreaterThan(0);
    expect(result.bundles.bundles.find((b) => b.handler === 'migrate')!.importMs).toBeGreaterThan(0);

    // Every target swept, then the fixed-batch reference (targetBatchMs 0) at the default batchSize.
    expect(result.sweep.points.map((p) => p.targetBatchMs)).toEqual([...result.sizes.sweepTargetsMs, 0]);
    expect(result.sweep.points.every((p) => p.keys > 0 && p.rowsPerSecond > 0 && p.writer.statements > 0 && p.batches > 0)).toBe(true);
    expect(result.sweep.points.at(-1)!.batchSizeMax).toBe(result.sweep.points.at(-1)!.batchSize);
    expect(result.sweep.reason).toMatch(/^The rule: /);
    if (result.sweep.recommended !== undefined) expect(result.sizes.sweepTargetsMs).toContain(result.sweep.recommended);

    expect(result.dataApi.points.map((p) => p.latencyMs)).toEqual(result.sizes.dataApiLatenciesMs);
    for (const point of result.dataApi.points) {
      expect(point.keyset.batches).toBeGreaterThan(0);
      // Counted by the emulator: every batch makes at least one call, and the migrate makes more than its batches.
      expect(point.keyset.callsPerBatch).toBeGreaterThanOrEqual(1);
      expect(point.keyset.dataApiCalls).toBeGreaterThan(point.keyset.batches);
      expect(point.single.dataApiCalls).toBe(1);
      expect(point.roundsMs).toEqual({ keyset: [point.keyset.durationMs], single: [point.single.durationMs] });
      expect(point.ratio).toBeGreaterThan(0);
    }

    // pgbench is Debian's postgresql-client; without it the section reports why it was skipped.
    if (result.pgbench.available) {
      expect(result.pgbench.phases.map((p) => p.key)).toEqual(['idle', 'migrate', 'contract', 'after']);
      for (const phase of result.pgbench.phases) {
        // At --rate 200 a transaction starts every 5 ms on average: a phase of 250 ms holds about 50. At this size
        // contract (and migrate) can end within a few milliseconds, with no transaction inside them.
        if (phase.wallMs >= 250) expect(phase.transactions, phase.key).toBeGreaterThan(0);
        expect(phase.cpu.runnerCores).toBeGreaterThan(0);
      }
      expect(result.pgbench.phases.find((p) => p.key === 'idle')!.wallMs).toBeGreaterThanOrEqual(250);
      expect(result.pgbench.migrate.batches).toBeGreaterThan(0);
      expect(result.pgbench.contractSteps).toBe(1);
    } else {
      expect(result.pgbench.reason).not.toBe('');
    }

    expect(result.targets.map((t) => t.target)).toEqual(expect.arrayContaining([expect.stringMatching(/calls per keyset batch/)]));
    expect(result.targets.length).toBeGreaterThanOrEqual(10);
    const markdown = readFileSync(outputPath, 'utf8');
    expect(markdown).toBe(result.markdown);
    const lines = markdown.split('\n');
    for (const heading of HEADINGS) expect(lines).toContain(heading);
    const sweepSection = markdown.slice(markdown.indexOf('## 6. Target batch duration sweep'), markdown.indexOf('## 7.'));
    const sweepHeader = sweepSection.split('\n').find((line) => line.startsWith('| targetBatchMs |'));
    expect(sweepHeader).toMatch(/\| Rows\/s \|.*\| Writer p50 \| Writer p99 \| p99 vs idle \| Longest lock wait \(≤\) \|/);
    for (const target of result.sizes.sweepTargetsMs) expect(sweepSection).toContain(`| ${target} ms |`);
    expect(sweepSection).toContain(`| 0 (fixed ${num(DEFAULT_SETTINGS.batchSize)}) |`);
    expect(sweepSection).toMatch(/\*\*(Recommended: targetBatchMs \d+|No target recommended from this run\.)\*\*/);
    expect(sweepSection).toContain('batchSize is only the first batch of each migrate call');
    expect(markdown).toMatch(/\*\*(PASS|FAIL)\*\*/);
    expect(markdown).toContain(result.date.slice(0, 10));
  }, 240_000);
});
