import type { Catalog } from '../../lambdas/core/index.ts';
import { bareKeyset, engineKeyset, naiveBatches, singleUpdate, type MigrateRun } from '../lib/contenders.ts';
import { pendingVisibility, type BenchServer } from '../lib/postgres.ts';
import { around, median, ratio } from '../lib/stats.ts';

export type ContenderKey = 'single' | 'keyset' | 'keyset-bare' | 'naive' | 'naive-rescan';

export interface Contender {
  readonly key: ContenderKey;
  readonly label: string;
  readonly rows: number;
  readonly batches: number;
  /** Median over the rounds; every round's time in `durationsMs`. */
  readonly durationMs: number;
  readonly durationsMs: readonly number[];
  /** The table's rows ÷ the median time. */
  readonly rowsPerSecond: number;
  /** rows/s relative to the single UPDATE's. */
  readonly ratioToSingle: number;
  readonly calls?: number;
}

export interface PerBatch {
  readonly key: ContenderKey;
  readonly label: string;
  readonly batches: number;
  /**
   * Median batch time of the batches between 5% and 15% of the run, and between 85% and 95% (with several rounds,
   * the median of each round's).
   */
  readonly at10Ms: number;
  readonly at90Ms: number;
  readonly ratio: number;
  readonly sampleSize: number;
}

export interface ThroughputFigures {
  readonly rows: number;
  readonly batchSize: number;
  readonly repeats: number;
  readonly contenders: readonly Contender[];
  readonly perBatch: readonly PerBatch[];
  /** keyset rows/s ÷ single UPDATE rows/s (target ≥ 0.70). */
  readonly keysetRatio: number;
  /** keyset batch time at 90% ÷ at 10% (target ≤ 1.2). */
  readonly keysetBatchRatio: number;
}

const LABELS: Record<ContenderKey, string> = {
  single: 'one single UPDATE (the limit)',
  keyset: 'engine keyset batches (sized toward targetBatchMs)',
  'keyset-bare': 'bare keyset batches (range + UPDATE + COMMIT, no engine bookkeeping)',
  naive: 'naive batches (ANY(ARRAY(SELECT … LIMIT n)))',
  'naive-rescan': 'naive batches, synchronize_seqscans off',
};

/**
 * Sections 1 and 2: the same backfill (migrate01) five ways, each on a fresh copy of the same expanded template,
 * `repeats` rounds.
 */
export async function measureThroughput(
  server: BenchServer,
  template: string,
  catalog: Catalog,
  rows: number,
  batchSize: number,
  repeats: number,
  log: (line: string) => void,
): Promise<ThroughputFigures> {
  const contenders: [ContenderKey, (url: string) => Promise<MigrateRun>][] = [
    ['single', (url) => singleUpdate(url)],
    ['keyset', (url) => engineKeyset(url, catalog, { batchSize, batchPauseMs: 0 })],
    ['keyset-bare', (url) => bareKeyset(url, batchSize)],
    ['naive', (url) => naiveBatches(url, batchSize, true)],
    ['naive-rescan', (url) => naiveBatches(url, batchSize, false)],
  ];
  const runs = new Map<ContenderKey, MigrateRun[]>(contenders.map(([key]) => [key, []]));
  for (let round = 0; round < repeats; round++) {
    // Every other round in reverse order, so no contender always follows the same one.
    for (const [key, run] of round % 2 === 0 ? contenders : [...contenders].reverse()) {
      const database = `bench_tp_${key.replaceAll('-', '_')}`;
      const url = await server.freshCopy(database, template);
      log(`  ${LABELS[key]}${repeats > 1 ? ` (round ${round + 1} of ${repeats})` : ''}: migrating ${rows.toLocaleString('en-US')} rows…`);
      const result = await run(url);
      const left = await pendingVisibility(url);
      if (left !== 0) throw new Error(`${LABELS[key]} left ${left} rows without visibility`);
      runs.get(key)!.push(result);
      log(`  ${LABELS[key]}: ${Math.round(result.durationMs)} ms, ${Math.round((result.rows / result.durationMs) * 1000)} rows/s`);
      await server.dropDatabase(database);
    }
  }
  const rate = (durationMs: number) => (rows / durationMs) * 1000;
  const singleRate = rate(median(runs.get('single')!.map((r) => r.durationMs)));
  const table: Contender[] = [...runs].map(([key, results]) => {
    const durationMs = median(results.map((r) => r.durationMs));
    return {
      key,
      label: LABELS[key],
      rows: results[0]!.rows,
      batches: results[0]!.batches,
      durationMs,
      durationsMs: results.map((r) => r.durationMs),
      rowsPerSecond: rate(durationMs),
      ratioToSingle: ratio(rate(durationMs), singleRate),
      calls: results[0]!.calls,
    };
  });
  const perBatch: PerBatch[] = [...runs]
    .filter(([key]) => key !== 'single')
    .map(([key, results]) => {
      const early = results.map((r) => around(r.batchDurationsMs, 0.05, 0.15));
      const late = results.map((r) => around(r.batchDurationsMs, 0.85, 0.95));
      const at10Ms = median(early.map(median));
      const at90Ms = median(late.map(median));
      return {
        key,
        label: LABELS[key],
        batches: results[0]!.batches,
        at10Ms,
        at90Ms,
        ratio: ratio(at90Ms, at10Ms),
        sampleSize: early[0]!.length,
      };
    });
  return {
    rows,
    batchSize,
    repeats,
    contenders: table,
    perBatch,
    keysetRatio: table.find((c) => c.key === 'keyset')!.ratioToSingle,
    keysetBatchRatio: perBatch.find((p) => p.key === 'keyset')!.ratio,
  };
}
