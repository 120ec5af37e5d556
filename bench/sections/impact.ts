import type { Catalog } from '../../lambdas/core/index.ts';
import { engineKeyset, singleUpdate, type MigrateRun } from '../lib/contenders.ts';
import type { BenchServer } from '../lib/postgres.ts';
import { max, median, ms, ratio } from '../lib/stats.ts';
import { pooled, withWriter, type WriterFigures } from '../lib/writer.ts';

export type ImpactKey = 'idle' | 'keyset-default' | 'keyset-nopause' | 'single';

export interface ImpactRun {
  readonly key: ImpactKey;
  readonly label: string;
  readonly windowMs: number;
  /**
   * `rows` is what the backfill changed (fewer than the table: the writer's updates fill the new column through the
   * trigger first); rows/s is of the table's rows, the work the backfill covered.
   */
  readonly migrate?: {
    readonly rows: number;
    readonly durationMs: number;
    readonly rowsPerSecond: number;
    /** Wall time of the batches (the whole batch transaction, which holds its rows' locks): median and longest. */
    readonly batchP50Ms: number;
    readonly batchMaxMs: number;
  };
  readonly writer: WriterFigures;
  readonly p50Ratio: number;
  readonly p99Ratio: number;
}

export interface ImpactFigures {
  readonly rows: number;
  /** Total idle time, in two windows (before and after the migrate runs), pooled into the idle row. */
  readonly idleMs: number;
  readonly idleWindowsP99Ms: readonly number[];
  readonly writerPauseMs: number;
  readonly sampleIntervalMs: number;
  readonly runs: readonly ImpactRun[];
  /** Writer p99 during migrate with the engine defaults ÷ idle p99 (target ≤ 2). */
  readonly p99Ratio: number;
  /** The engine's target batch duration in the default run (its batches size themselves toward it). */
  readonly targetBatchMs: number;
}

export const WRITER_PAUSE_MS = 5;
export const SAMPLE_INTERVAL_MS = 10;

/**
 * Section 3: the same writer on a fresh copy of the expanded template, idle (no migrate, `idleMs` in two halves) and
 * while the backfill runs: the engine with its default batch settings (adaptive batches toward targetBatchMs, from a
 * first batch of batchSize), the same without a pause, and the single UPDATE.
 */
export async function measureImpact(
  server: BenchServer,
  template: string,
  catalog: Catalog,
  rows: number,
  idleMs: number,
  defaults: { batchSize: number; targetBatchMs: number; batchPauseMs: number },
  log: (line: string) => void,
): Promise<ImpactFigures> {
  // The idle baseline is two half windows, one before the migrate runs and one after them, pooled: it catches a
  // drift of the machine over the runs, and one window's p99 alone moves by tens of percent on a small VM.
  type Plan = [ImpactKey | 'idle-after', string, ((url: string) => Promise<MigrateRun>) | undefined];
  const plans: Plan[] = [
    ['idle', `idle (no migrate), before the runs`, undefined],
    [
      'keyset-default',
      `engine keyset, defaults (targetBatchMs ${defaults.targetBatchMs}, first batch ${defaults.batchSize}, pause ${defaults.batchPauseMs} ms)`,
      (url) => engineKeyset(url, catalog, defaults),
    ],
    [
      'keyset-nopause',
      `engine keyset, targetBatchMs ${defaults.targetBatchMs}, first batch ${defaults.batchSize}, pause 0`,
      (url) => engineKeyset(url, catalog, { ...defaults, batchPauseMs: 0 }),
    ],
    ['single', 'one single UPDATE', (url) => singleUpdate(url)],
    ['idle-after', `idle (no migrate), after the runs`, undefined],
  ];
  const measured = new Map<ImpactKey | 'idle-after', Omit<ImpactRun, 'p50Ratio' | 'p99Ratio'>>();
  for (const [key, label, work] of plans) {
    const database = `bench_impact_${key.replaceAll('-', '_')}`;
    const url = await server.freshCopy(database, template);
    log(`  ${label}…`);
    const { result, writer, windowMs } = await withWriter(
      url,
      { maxId: rows, pauseMs: WRITER_PAUSE_MS, sampleIntervalMs: SAMPLE_INTERVAL_MS },
      async () => (work ? work(url) : new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), idleMs / 2))),
    );
    const migrate = result
      ? {
          rows: result.rows,
          durationMs: result.durationMs,
          rowsPerSecond: (rows / result.durationMs) * 1000,
          batchP50Ms: median(result.batchDurationsMs),
          batchMaxMs: max(result.batchDurationsMs),
        }
      : undefined;
    measured.set(key, { key: key === 'idle-after' ? 'idle' : key, label, windowMs, migrate, writer });
    log(
      `  ${label}: ${writer.statements} writes, p50 ${writer.p50Ms.toFixed(2)} ms, p99 ${writer.p99Ms.toFixed(2)} ms, ` +
        `longest lock wait ≥ ${writer.longestLockWaitMs.toFixed(1)} ms`,
    );
    await server.dropDatabase(database);
  }
  const before = measured.get('idle')!;
  const after = measured.get('idle-after')!;
  const idle = pooled([before.writer, after.writer]);
  const idleRun = {
    key: 'idle' as const,
    label: `idle (no migrate, ${ms(idleMs / 2)} before the runs + ${ms(idleMs / 2)} after them)`,
    windowMs: before.windowMs + after.windowMs,
    writer: idle,
  };
  const runs: ImpactRun[] = [idleRun, ...(['keyset-default', 'keyset-nopause', 'single'] as const).map((k) => measured.get(k)!)].map(
    (m) => ({ ...m, p50Ratio: ratio(m.writer.p50Ms, idle.p50Ms), p99Ratio: ratio(m.writer.p99Ms, idle.p99Ms) }),
  );
  return {
    rows,
    idleMs,
    idleWindowsP99Ms: [before.writer.p99Ms, after.writer.p99Ms],
    writerPauseMs: WRITER_PAUSE_MS,
    sampleIntervalMs: SAMPLE_INTERVAL_MS,
    runs,
    p99Ratio: runs.find((r) => r.key === 'keyset-default')!.p99Ratio,
    targetBatchMs: defaults.targetBatchMs,
  };
}
