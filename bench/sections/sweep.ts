import type { Catalog } from '../../lambdas/core/index.ts';
import { engineWindow } from '../lib/contenders.ts';
import type { BenchServer } from '../lib/postgres.ts';
import { max, median, ms, num, ratio, times } from '../lib/stats.ts';
import { lockWaitUpperEstimateMs, pooled, withWriter, type WriterFigures } from '../lib/writer.ts';
import { SAMPLE_INTERVAL_MS, WRITER_PAUSE_MS } from './impact.ts';

/** The engine settings a sweep point ran with: `targetBatchMs` 0 is the fixed-batch reference. */
export interface SweepSetting {
  readonly targetBatchMs: number;
  /** The first batch of the call (adaptive) or every batch (fixed). */
  readonly batchSize: number;
  readonly pauseMs: number;
}

export interface SweepPoint extends SweepSetting {
  /** Keys the cursor covered in the window (rows/s is of these). */
  readonly keys: number;
  /** Rows the backfill itself changed: fewer, since the writer's updates fill the new column through the trigger. */
  readonly migratedRows: number;
  readonly durationMs: number;
  readonly rowsPerSecond: number;
  readonly batches: number;
  /** Rows each batch was sized for, median and largest: where the adaptive size settled. */
  readonly batchSizeP50: number;
  readonly batchSizeMax: number;
  readonly batchP50Ms: number;
  readonly batchMaxMs: number;
  /**
   * A window covered the whole table before its budget ran out: its rate includes the end of the step, and a larger
   * table would be needed to tell this target from a larger one.
   */
  readonly finishedTable: boolean;
  readonly writer: WriterFigures;
  /** Writer p99 ÷ the pooled idle p99. */
  readonly p99Ratio: number;
  /** The writer's longest lock wait, estimated from above (see `lockWaitUpperEstimateMs`); 0 when none was seen. */
  readonly lockWaitMs: number;
}

export interface SweepFigures {
  readonly rows: number;
  readonly windowMs: number;
  /** Windows per setting: its figures pool them (rates over all their keys and time, the writer's latencies). */
  readonly rounds: number;
  readonly sampleIntervalMs: number;
  /** The idle windows before and after the sweep, pooled. */
  readonly idle: WriterFigures;
  readonly idleWindowsP99Ms: readonly number[];
  /** The adaptive points in target order, then the fixed-batch reference. */
  readonly points: readonly SweepPoint[];
  readonly engineDefault: SweepSetting;
  /** The recommended targetBatchMs, or undefined when no target met the rule. */
  readonly recommended: number | undefined;
  readonly reason: string;
}

/** Writer p99 within this factor of idle: the same bar as section 3's target. */
export const P99_LIMIT = 2;
/**
 * Throughputs within this fraction of the best count as equal: single windows of a few thousand writes on a small VM
 * do not resolve finer than that.
 */
export const NOISE = 0.1;

/** The setting's name as the report writes it. */
export function settingName(s: SweepSetting): string {
  return s.targetBatchMs === 0 ? `targetBatchMs 0 (fixed batches of ${num(s.batchSize)})` : `targetBatchMs ${s.targetBatchMs}`;
}

/**
 * Section 6: for every target batch duration, `rounds` migrate() calls whose budget is the measurement window, each
 * on a fresh copy of the §1 table with the §3 writer beside it, at the engine's default first batch and pause; and
 * the same with fixed batches of the default batchSize (targetBatchMs 0) as the reference. Every setting gets the
 * same windows, so the writer's percentiles rest on the same number of statements; the idle baseline is the same
 * writer for one window before the sweep and one after it.
 */
export async function measureSweep(
  server: BenchServer,
  template: string,
  catalog: Catalog,
  rows: number,
  targetsMs: readonly number[],
  windowMs: number,
  rounds: number,
  engineDefault: SweepSetting,
  log: (line: string) => void,
): Promise<SweepFigures> {
  const writerOptions = { maxId: rows, pauseMs: WRITER_PAUSE_MS, sampleIntervalMs: SAMPLE_INTERVAL_MS };
  const idleWindow = async (): Promise<WriterFigures> => {
    const url = await server.freshCopy('bench_sweep_idle', template);
    const { writer } = await withWriter(url, writerOptions, () => new Promise((resolve) => setTimeout(resolve, windowMs)));
    await server.dropDatabase('bench_sweep_idle');
    log(`  idle writer: p99 ${writer.p99Ms.toFixed(2)} ms`);
    return writer;
  };
  const idleBefore = await idleWindow();
  const settings: SweepSetting[] = [
    ...targetsMs.map((targetBatchMs) => ({ ...engineDefault, targetBatchMs })),
    { ...engineDefault, targetBatchMs: 0 },
  ];
  const windows = new Map<SweepSetting, { result: Awaited<ReturnType<typeof engineWindow>>; writer: WriterFigures }[]>(
    settings.map((setting) => [setting, []]),
  );
  for (let round = 0; round < rounds; round++) {
    // Every other round in reverse order, so that no setting always runs first or after the same one.
    for (const setting of round % 2 === 0 ? settings : [...settings].reverse()) {
      const database = `bench_sweep_${setting.targetBatchMs}`;
      const url = await server.freshCopy(database, template);
      const window = await withWriter(url, writerOptions, () =>
        engineWindow(url, catalog, {
          batchSize: setting.batchSize,
          targetBatchMs: setting.targetBatchMs,
          batchPauseMs: setting.pauseMs,
          migrateBudgetMs: windowMs,
        }),
      );
      await server.dropDatabase(database);
      windows.get(setting)!.push(window);
      const { result, writer } = window;
      log(
        `  ${settingName(setting)}: ${Math.round((result.keys / result.durationMs) * 1000)} rows/s, batches of ` +
          `${median(result.batchSizes)} rows (median), writer p99 ${writer.p99Ms.toFixed(2)} ms ` +
          `(${(writer.p99Ms / idleBefore.p99Ms).toFixed(2)}× the first idle window), longest lock wait ≤ ` +
          `${lockWaitUpperEstimateMs(writer, SAMPLE_INTERVAL_MS).toFixed(1)} ms`,
      );
    }
  }
  const points: SweepPoint[] = settings.map((setting) => {
    const measured = windows.get(setting)!;
    const results = measured.map((m) => m.result);
    const sum = (pick: (r: (typeof results)[number]) => number) => results.reduce((n, r) => n + pick(r), 0);
    const sizes = results.flatMap((r) => r.batchSizes);
    const durations = results.flatMap((r) => r.batchDurationsMs);
    return {
      ...setting,
      keys: sum((r) => r.keys),
      migratedRows: sum((r) => r.rows),
      durationMs: sum((r) => r.durationMs),
      rowsPerSecond: (sum((r) => r.keys) / sum((r) => r.durationMs)) * 1000,
      batches: sum((r) => r.batches),
      batchSizeP50: median(sizes),
      batchSizeMax: max(sizes),
      batchP50Ms: median(durations),
      batchMaxMs: max(durations),
      finishedTable: results.some((r) => r.keys >= rows),
      writer: pooled(measured.map((m) => m.writer)),
      p99Ratio: Number.NaN,
      lockWaitMs: Math.max(...measured.map((m) => lockWaitUpperEstimateMs(m.writer, SAMPLE_INTERVAL_MS))),
    };
  });
  // The idle baseline is one window before the sweep and one after it, pooled: a single window's p99 moves by tens of
  // percent from one window to the next on a small VM, and this also catches a drift over the sweep.
  const idleAfter = await idleWindow();
  const idle = pooled([idleBefore, idleAfter]);
  const scored = points.map((p) => ({ ...p, p99Ratio: ratio(p.writer.p99Ms, idle.p99Ms) }));
  const { recommended, reason } = recommend(scored, engineDefault);
  return {
    rows,
    windowMs,
    rounds,
    sampleIntervalMs: SAMPLE_INTERVAL_MS,
    idle,
    idleWindowsP99Ms: [idleBefore.p99Ms, idleAfter.p99Ms],
    points: scored,
    engineDefault,
    recommended,
    reason,
  };
}

/**
 * The rule: of the adaptive targets whose writer p99 stays within P99_LIMIT× idle and whose longest lock wait (upper
 * estimate) stays within the target itself, the fastest; among those within NOISE of it, the smallest target (the
 * shortest row locks for about the same rate). The fixed-batch reference is reported beside it, never chosen.
 */
function recommend(points: readonly SweepPoint[], engineDefault: SweepSetting): { recommended: number | undefined; reason: string } {
  const describe = (p: SweepPoint) =>
    `${num(p.rowsPerSecond)} rows/s, writer p99 ${num(p.p99Ratio, 2)}× idle, ` +
    (p.writer.lockWaits === 0 ? 'no lock wait seen, ' : `longest lock wait ≤ ${ms(p.lockWaitMs)}, `) +
    `batches of ${num(p.batchSizeP50)} rows in ${ms(p.batchP50Ms)} (median)`;
  const adaptive = points.filter((p) => p.targetBatchMs > 0);
  const fixed = points.find((p) => p.targetBatchMs === 0);
  const meets = (p: SweepPoint) => p.p99Ratio <= P99_LIMIT && p.lockWaitMs <= p.targetBatchMs;
  const eligible = adaptive.filter(meets);
  let text =
    `The rule: of the targets whose writer p99 stayed within ${P99_LIMIT}× idle and whose longest lock wait (upper ` +
    `estimate) stayed within the target itself, take the fastest, and among those within ${NOISE * 100}% of it the ` +
    `smallest target (shorter row locks for about the same rate). ${eligible.length} of ${adaptive.length} targets met ` +
    `both bars` +
    (adaptive.length > eligible.length
      ? ` (${adaptive
          .filter((p) => !meets(p))
          .map(
            (p) =>
              `${p.targetBatchMs} ms: ` +
              [p.p99Ratio > P99_LIMIT && `p99 ${num(p.p99Ratio, 2)}× idle`, p.lockWaitMs > p.targetBatchMs && `lock wait ≤ ${ms(p.lockWaitMs)}`]
                .filter(Boolean)
                .join(', '),
          )
          .join('; ')} failed)`
      : '') +
    '.';
  let chosen: SweepPoint | undefined;
  if (eligible.length === 0) {
    text += ' No target is recommended from this run.';
  } else {
    const best = Math.max(...eligible.map((p) => p.rowsPerSecond));
    chosen = [...eligible].filter((p) => p.rowsPerSecond >= best * (1 - NOISE)).sort((a, b) => a.targetBatchMs - b.targetBatchMs)[0]!;
    text += ` Recommended: targetBatchMs ${chosen.targetBatchMs}, ${describe(chosen)}.`;
  }
  const current = adaptive.find((p) => p.targetBatchMs === engineDefault.targetBatchMs);
  if (current && chosen && current !== chosen) {
    text +=
      ` The engine default, targetBatchMs ${current.targetBatchMs}: ${describe(current)}` +
      (meets(current) ? '' : ' (it missed the rule)') +
      `; the recommendation covers ${times(chosen.rowsPerSecond / current.rowsPerSecond)} its rows per second.`;
  } else if (current && chosen) {
    text += ' That is the engine default, which stands.';
  }
  if (fixed) {
    text +=
      ` The fixed-batch reference, ${settingName(fixed)} as the engine ran before batches sized themselves: ${describe(fixed)}` +
      (chosen ? `; the recommendation covers ${times(chosen.rowsPerSecond / fixed.rowsPerSecond)} its rows per second.` : '.');
  }
  return { recommended: chosen?.targetBatchMs, reason: text };
}
