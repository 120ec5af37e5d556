// The handlers' Powertools logger reads its level when it is created: silence it before any handler is imported.
import './lib/quiet.ts';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SETTINGS } from '../lambdas/core/index.ts';
import { describeMachine, type Machine } from './lib/machine.ts';
import { BenchServer, migrate01Catalog } from './lib/postgres.ts';
import { ms, num, pct, times } from './lib/stats.ts';
import { lockWaitUpperEstimateMs } from './lib/writer.ts';
import { HEADINGS, renderReport, type ReportInput, type Target } from './report.ts';
import { measureBundles, type BundleFigures } from './sections/bundles.ts';
import { measureDataApi, type DataApiFigures } from './sections/data-api.ts';
import { measureImpact, type ImpactFigures } from './sections/impact.ts';
import { measurePgbench, type PgbenchFigures, type PgbenchSizes } from './sections/pgbench.ts';
import { measureSweep, type SweepFigures } from './sections/sweep.ts';
import { measureThroughput, type ThroughputFigures } from './sections/throughput.ts';
import { measureTransitions, type TransitionFigures } from './sections/transitions.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const DEFAULT_OUTPUT = join(ROOT, 'docs/benchmarks.md');
/** Where the CLI keeps a size's last figures, so that `--render-only` can rewrite the report without measuring. */
export const figuresFile = (size: SizeName) => join(ROOT, `bench/.out/last-run-${size}.json`);

export type SizeName = 'full' | 'small' | 'tiny';

/** How big each section runs. `full` is the documented run; `small` proves in CI that it still runs; `tiny` is the smoke test's. */
export interface Sizes {
  /** §1–3 and §6: rows of the table every migrate contender copies. */
  readonly migrateRows: number;
  /** §1–2: how many times each contender runs (alternating the order); the figures are medians. */
  readonly throughputRepeats: number;
  /** §3: how long the idle writer runs in all, half before the migrate runs and half after them. */
  readonly idleMs: number;
  /** §4: table sizes of the full executions, and the migrate budget they share. */
  readonly executionRows: readonly number[];
  readonly executionBudgetMs: number;
  /** §5: node processes per bundle for the initialisation time, and which handlers to time (all are bundled). */
  readonly bundleRuns: number;
  readonly timedHandlers: 'all' | readonly string[];
  /**
   * §6: the target batch durations swept (the fixed-batch reference at the default batchSize is always added), and
   * the measurement window of each setting (one migrate call's budget), and how many windows each setting gets.
   */
  readonly sweepTargetsMs: readonly number[];
  readonly sweepWindowMs: number;
  readonly sweepRounds: number;
  /** §7: rows of the table migrated through the Data API emulator, and the latencies it adds to every call. */
  readonly dataApiRows: number;
  readonly dataApiLatenciesMs: readonly number[];
  /** Rounds of each §7 contender per latency; the median round is reported. */
  readonly dataApiRounds: number;
  /** §8: pgbench's scale (100,000 accounts each), clients, scheduled rate, and the idle window before migrate. */
  readonly pgbench: PgbenchSizes;
}

export const SIZES: Record<SizeName, Sizes> = {
  full: {
    migrateRows: 1_000_000,
    throughputRepeats: 3,
    idleMs: 20_000,
    executionRows: [100_000, 1_000_000],
    executionBudgetMs: 5_000,
    bundleRuns: 5,
    timedHandlers: 'all',
    // 6 s: at 200 ms and above the engine covers about 100,000 rows/s on a 2-core VM, so each window ends with the
    // 1,000,000-row table a little over half done (a window that finishes the table also times the step's end).
    sweepTargetsMs: [20, 50, 100, 200, 400, 800],
    sweepWindowMs: 6_000,
    sweepRounds: 2,
    dataApiRows: 150_000,
    dataApiLatenciesMs: [5, 10, 20],
    dataApiRounds: 3,
    pgbench: { scale: 5, clients: 4, rateTps: 200, idleMs: 10_000 },
  },
  small: {
    migrateRows: 20_000,
    throughputRepeats: 1,
    idleMs: 2_000,
    executionRows: [10_000, 50_000],
    executionBudgetMs: 1_000,
    bundleRuns: 2,
    timedHandlers: 'all',
    sweepTargetsMs: [50, 200, 800],
    sweepWindowMs: 1_000,
    sweepRounds: 1,
    dataApiRows: 10_000,
    dataApiLatenciesMs: [5, 10, 20],
    dataApiRounds: 1,
    pgbench: { scale: 1, clients: 4, rateTps: 200, idleMs: 2_000 },
  },
  tiny: {
    migrateRows: 3_000,
    throughputRepeats: 1,
    idleMs: 500,
    executionRows: [1_000, 3_000],
    executionBudgetMs: 1_000,
    bundleRuns: 1,
    timedHandlers: ['migrate'],
    sweepTargetsMs: [100, 200],
    sweepWindowMs: 1_000,
    sweepRounds: 1,
    dataApiRows: 2_000,
    dataApiLatenciesMs: [10],
    dataApiRounds: 1,
    pgbench: { scale: 1, clients: 2, rateTps: 100, idleMs: 500 },
  },
};

export interface BenchmarkOptions {
  /** @default 'full' */
  readonly size?: SizeName;
  /** Overrides of the preset's sizes. */
  readonly sizes?: Partial<Sizes>;
  /** Where the markdown goes; `null` writes none. @default docs/benchmarks.md */
  readonly outputPath?: string | null;
  /** Progress lines. @default console.log */
  readonly log?: (line: string) => void;
  /** The command line named in the report. */
  readonly command?: string;
  /** Also write the figures as JSON here (for `--render-only`). */
  readonly figuresPath?: string;
}

/** The figures a report is rendered from, as saved (targets are evaluated again when rendering). */
type SavedFigures = Omit<ReportInput, 'date' | 'targets' | 'engineDefaults'> & { readonly date: string };

export interface BenchmarkResult {
  readonly date: string;
  readonly size: SizeName;
  readonly sizes: Sizes;
  readonly durationMs: number;
  readonly machine: Machine;
  readonly throughput: ThroughputFigures;
  readonly impact: ImpactFigures;
  readonly transitions: TransitionFigures;
  readonly bundles: BundleFigures;
  readonly sweep: SweepFigures;
  readonly dataApi: DataApiFigures;
  readonly pgbench: PgbenchFigures;
  readonly targets: readonly Target[];
  readonly markdown: string;
  readonly outputPath: string | null;
}

/** Runs every section on one embedded PostgreSQL, writes the markdown report and returns the figures. */
export async function runBenchmark(options: BenchmarkOptions = {}): Promise<BenchmarkResult> {
  const size = options.size ?? 'full';
  const sizes: Sizes = { ...SIZES[size], ...options.sizes };
  const log = options.log ?? ((line: string) => console.log(line));
  const outputPath = options.outputPath === undefined ? DEFAULT_OUTPUT : options.outputPath;
  const started = performance.now();
  const date = new Date();
  const clock = () => `${((performance.now() - started) / 1000).toFixed(0).padStart(4)} s`;
  const load: { at: string; load1: number }[] = [];
  const step = (line: string, section?: string) => {
    if (section) load.push({ at: section, load1: loadavg()[0]! });
    log(`[${clock()}] ${line}`);
  };
  const engineDefaults = {
    batchSize: DEFAULT_SETTINGS.batchSize,
    targetBatchMs: DEFAULT_SETTINGS.targetBatchMs,
    batchPauseMs: DEFAULT_SETTINGS.batchPauseMs,
  };

  step(`emc-upgrade benchmark, size ${size}: starting an embedded PostgreSQL`);
  const server = await BenchServer.start();
  try {
    const machine = await describeMachine(server);
    load.push({ at: 'start', load1: loadavg()[0]! });
    step(`${machine.cpuModel}, ${machine.cores} cores, ${machine.memoryGiB} GiB, Node ${machine.node}, ${machine.postgres}`);
    const catalog = await migrate01Catalog();

    step(`preparing the ${num(sizes.migrateRows)}-row template (seed, expand, VACUUM ANALYZE)`);
    const mainTemplate = 'bench_template_main';
    await server.prepareTemplate(mainTemplate, sizes.migrateRows, catalog);

    step(`1–2. migrate throughput and per-batch time on ${num(sizes.migrateRows)} rows`, '§1');
    const throughput = await measureThroughput(
      server,
      mainTemplate,
      catalog,
      sizes.migrateRows,
      engineDefaults.batchSize,
      sizes.throughputRepeats,
      log,
    );

    step(`3. application impact on ${num(sizes.migrateRows)} rows`, '§3');
    const impact = await measureImpact(server, mainTemplate, catalog, sizes.migrateRows, sizes.idleMs, engineDefaults, log);

    step(
      `6. target batch duration sweep on ${num(sizes.migrateRows)} rows, ${sizes.sweepRounds} × ${num(sizes.sweepWindowMs)} ms per setting`,
      '§6',
    );
    const sweep = await measureSweep(
      server,
      mainTemplate,
      catalog,
      sizes.migrateRows,
      sizes.sweepTargetsMs,
      sizes.sweepWindowMs,
      sizes.sweepRounds,
      { targetBatchMs: engineDefaults.targetBatchMs, batchSize: engineDefaults.batchSize, pauseMs: engineDefaults.batchPauseMs },
      log,
    );
    await server.dropDatabase(mainTemplate);

    step(`7. the Data API path on ${num(sizes.dataApiRows)} rows at ${sizes.dataApiLatenciesMs.join(', ')} ms per call`, '§7');
    const dataApiTemplate = 'bench_template_dataapi';
    await server.prepareTemplate(dataApiTemplate, sizes.dataApiRows, catalog);
    const dataApi = await measureDataApi(server, dataApiTemplate, catalog, sizes.dataApiRows, sizes.dataApiLatenciesMs, sizes.dataApiRounds, log);
    await server.dropDatabase(dataApiTemplate);

    step(`8. pgbench TPC-B (scale ${sizes.pgbench.scale}) through a backfill and a contract`, '§8');
    const pgbench = await measurePgbench(server, sizes.pgbench, log);

    step(`4. state transitions of full executions at ${sizes.executionRows.map((n) => num(n)).join(' and ')} rows`, '§4');
    const transitions = await measureTransitions(server, sizes.executionRows, sizes.executionBudgetMs, log);

    step('5. Lambda bundles and initialisation', '§5');
    const bundles = await measureBundles(sizes.bundleRuns, sizes.timedHandlers, log);

    load.push({ at: 'end', load1: loadavg()[0]! });
    const durationMs = performance.now() - started;
    const figures: SavedFigures = {
      date: date.toISOString(),
      size,
      command: options.command ?? (size === 'full' ? 'npm run bench' : `npm run bench -- --${size}`),
      durationMs,
      machine,
      throughput,
      impact,
      transitions,
      bundles,
      sweep,
      dataApi,
      pgbench,
      load,
    };
    if (options.figuresPath) {
      mkdirSync(dirname(options.figuresPath), { recursive: true });
      // The writer's raw latencies are only needed to pool windows while measuring.
      writeFileSync(options.figuresPath, JSON.stringify(figures, (k, v: unknown) => (k === 'latenciesMs' ? undefined : v)));
    }
    const { markdown, targets } = render(figures);
    if (outputPath) {
      mkdirSync(dirname(outputPath), { recursive: true });
      writeFileSync(outputPath, markdown);
    }
    step(`done in ${(durationMs / 1000).toFixed(0)} s${outputPath ? `; wrote ${outputPath}` : ''}`);
    for (const t of targets) log(`  ${t.pass ? 'PASS' : 'FAIL'}  ${t.section}: ${t.target} — ${t.measured}`);
    return {
      date: date.toISOString(),
      size,
      sizes,
      durationMs,
      machine,
      throughput,
      impact,
      transitions,
      bundles,
      sweep,
      dataApi,
      pgbench,
      targets,
      markdown,
      outputPath,
    };
  } finally {
    await server.stop();
  }
}

/** The report and its targets from a run's figures. */
function render(figures: SavedFigures): { markdown: string; targets: Target[] } {
  const targets = evaluateTargets(figures);
  const markdown = renderReport({ ...figures, date: new Date(figures.date), engineDefaults: DEFAULT_SETTINGS, targets });
  return { markdown, targets };
}

/** Rewrites the report from saved figures, without measuring anything (after a change to the report's text). */
export function renderSavedFigures(figuresPath: string, outputPath: string): void {
  const { markdown } = render(JSON.parse(readFileSync(figuresPath, 'utf8')) as SavedFigures);
  mkdirSync(dirname(outputPath), { recursive: true });
  writeFileSync(outputPath, markdown);
}

function evaluateTargets({ throughput, impact, transitions, bundles, sweep, dataApi }: SavedFigures): Target[] {
  const idle = impact.runs.find((r) => r.key === 'idle')!.writer;
  const withDefaults = impact.runs.find((r) => r.key === 'keyset-default')!;
  const during = withDefaults.writer;
  // The same setting measured again in §6, against its own idle windows: a second, independent sample. A p99 ratio
  // moves by tens of percent between windows on a small VM, so the target takes the worse of the two.
  const again = sweep.points.find(
    (p) =>
      p.targetBatchMs === DEFAULT_SETTINGS.targetBatchMs &&
      p.batchSize === DEFAULT_SETTINGS.batchSize &&
      p.pauseMs === DEFAULT_SETTINGS.batchPauseMs,
  );
  const p99Ratio = Math.max(impact.p99Ratio, again?.p99Ratio ?? -Infinity);
  const largest = [...bundles.bundles].sort((a, b) => b.bytes - a.bytes)[0];
  const missing = bundles.bundles.filter((b) => b.missingInLambda.length > 0);
  const keyset = throughput.contenders.find((c) => c.key === 'keyset')!;
  const bare = throughput.contenders.find((c) => c.key === 'keyset-bare')!;
  const toBare = keyset.rowsPerSecond / bare.rowsPerSecond;
  // Calls per batch at every latency (they do not depend on it); the target takes the most seen.
  const callsPerBatch = Math.max(...dataApi.points.map((p) => p.keyset.callsPerBatch));
  const at10 = dataApi.points.find((p) => p.latencyMs === 10);
  // A sampled lock wait is a lower bound: the target is judged on the upper estimate.
  const lockWaitMs = lockWaitUpperEstimateMs(during, impact.sampleIntervalMs);
  const lockLimitMs = impact.targetBatchMs;
  return [
    {
      section: '7. Data API calls',
      target: 'Data API calls per keyset batch = 1',
      measured:
        `${num(callsPerBatch)} per batch (emulator's count; ${dataApi.points.map((p) => `${num(p.keyset.dataApiCalls)} calls for ${num(p.keyset.batches)} batches at ${p.latencyMs} ms`).join(', ')})`,
      pass: callsPerBatch <= 1,
      margin: 1 - callsPerBatch,
    },
    at10
      ? {
          section: '7. Data API throughput',
          target: 'engine keyset through the emulator at 10 ms per call, default settings, ≥ 0.6 of the single UPDATE through it',
          measured: `${times(at10.ratio)} (${num(at10.keyset.rowsPerSecond)} vs ${num(at10.single.rowsPerSecond)} rows/s)`,
          pass: at10.ratio >= 0.6,
          margin: at10.ratio / 0.6 - 1,
        }
      : {
          section: '7. Data API throughput',
          target: 'engine keyset through the emulator at 10 ms per call, default settings, ≥ 0.6 of the single UPDATE through it',
          measured: `not measured: this run's latencies were ${dataApi.points.map((p) => `${p.latencyMs} ms`).join(', ')}`,
          pass: false,
        },
    {
      section: '1. Throughput',
      target: 'engine keyset ≥ 85% of bare keyset batches’ rows/s (node-postgres)',
      measured: `${pct(toBare)} (${num(keyset.rowsPerSecond)} vs ${num(bare.rowsPerSecond)} rows/s)`,
      pass: toBare >= 0.85,
      margin: toBare / 0.85 - 1,
    },
    {
      section: '1. Throughput',
      target: 'engine keyset ≥ 70% of the single UPDATE’s rows/s (node-postgres)',
      measured: `${pct(throughput.keysetRatio)} (${times(throughput.keysetRatio)})`,
      pass: throughput.keysetRatio >= 0.7,
      margin: throughput.keysetRatio / 0.7 - 1,
    },
    {
      section: '2. Per-batch time',
      target: 'engine keyset batch at 90% ÷ at 10% ≤ 1.2 (adaptive batch size, targetBatchMs default)',
      measured: times(throughput.keysetBatchRatio),
      pass: throughput.keysetBatchRatio <= 1.2,
      margin: 1 - throughput.keysetBatchRatio / 1.2,
    },
    {
      section: '3. Application impact',
      target: 'writer p99 during migrate (engine defaults: adaptive batches) ≤ 2× idle, in both §3 and the §6 window of the same setting',
      measured:
        `§3 ${times(impact.p99Ratio)} (${during.p99Ms.toFixed(2)} ms vs ${idle.p99Ms.toFixed(2)} ms idle)` +
        (again ? `; §6 ${times(again.p99Ratio)} (${again.writer.p99Ms.toFixed(2)} ms vs ${sweep.idle.p99Ms.toFixed(2)} ms idle)` : ''),
      pass: p99Ratio <= 2,
      margin: 1 - p99Ratio / 2,
    },
    {
      section: '3. Application impact',
      target: `writer's longest lock wait during migrate (engine defaults: adaptive batches) ≤ the target batch duration (targetBatchMs ${impact.targetBatchMs})`,
      measured:
        during.lockWaits === 0
          ? `no write seen waiting on a lock (sampled every ${impact.sampleIntervalMs} ms); limit ${ms(lockLimitMs)}`
          : `≤ ${ms(lockWaitMs)} (sampled ≥ ${ms(during.longestLockWaitMs)}, + one ${impact.sampleIntervalMs} ms interval, ` +
            `at most the write's ${ms(during.longestLockWaitUpperMs)}) vs ${ms(lockLimitMs)}`,
      pass: lockWaitMs <= lockLimitMs,
      margin: 1 - lockWaitMs / lockLimitMs,
    },
    {
      section: '4. State transitions',
      target: 'transitions follow minutes of migrate, not rows (calls ≤ ⌈migrate time ÷ budget⌉ + 1)',
      measured: transitions.runs
        .map((r) => `${num(r.rows)} rows: ${r.transitions} transitions, ${r.migrateCalls} call${r.migrateCalls === 1 ? '' : 's'} for ${ms(r.migrateMs)} of migrate`)
        .join('; '),
      pass: transitions.boundedByMinutes,
    },
    {
      section: '5. Bundle size',
      target: `every handler bundle ≤ ${Math.round(bundles.targetBytes / 1024)} KiB minified`,
      measured: largest ? `largest ${largest.handler}: ${(largest.bytes / 1024).toFixed(1)} KiB` : 'no bundles',
      pass: bundles.allWithinTarget,
      margin: largest ? 1 - largest.bytes / bundles.targetBytes : undefined,
    },
    {
      section: '5. Bundle imports',
      target: 'bundles import nothing at run time that the Lambda runtime lacks',
      measured: missing.length ? missing.map((b) => `${b.handler}: ${b.missingInLambda.join(', ')}`).join('; ') : 'only @aws-sdk/*',
      pass: missing.length === 0,
    },
  ];
}

export { HEADINGS };

function parseArgs(argv: readonly string[]): BenchmarkOptions & { renderOnly?: string } {
  let size: SizeName = (process.env.BENCH_SIZE as SizeName | undefined) ?? 'full';
  let outputPath: string | null | undefined = process.env.BENCH_OUT;
  let renderOnly: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--small' || arg === '--full' || arg === '--tiny') size = arg.slice(2) as SizeName;
    else if (arg === '--render-only') renderOnly = argv[i + 1] && !argv[i + 1]!.startsWith('--') ? argv[++i]! : figuresFile('full');
    else if (arg === '--out') outputPath = argv[++i];
    else if (arg.startsWith('--out=')) outputPath = arg.slice('--out='.length);
    else if (arg === '--no-write') outputPath = null;
    else if (arg === '--help' || arg === '-h') {
      console.log(
        'Usage: npm run bench [-- --small | --tiny] [--out docs/benchmarks.md | --no-write]\n' +
          '       npm run bench -- --render-only [figures.json] [--out docs/benchmarks.md]\n' +
          '  BENCH_SIZE=full|small|tiny and BENCH_OUT=path do the same as the flags. Every run keeps its figures in\n' +
          `  ${figuresFile('full').replace('-full', '-<size>')}; --render-only rewrites the report from the full run's\n` +
          '  (or the given file) without measuring.',
      );
      process.exit(0);
    } else throw new Error(`Unknown argument ${arg} (try --help)`);
  }
  if (!(size in SIZES)) throw new Error(`Unknown size ${size}: full, small or tiny`);
  return { size, outputPath: outputPath === undefined ? undefined : outputPath && resolve(outputPath), renderOnly };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { renderOnly, ...options } = parseArgs(process.argv.slice(2));
  if (renderOnly) {
    const outputPath = options.outputPath ?? DEFAULT_OUTPUT;
    renderSavedFigures(renderOnly, outputPath);
    console.log(`Rewrote ${outputPath} from ${renderOnly}.`);
    process.exit(0);
  }
  const command = `npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}`;
  runBenchmark({ ...options, command, figuresPath: figuresFile(options.size ?? 'full') }).then(
    () => process.exit(0),
    (error: unknown) => {
      console.error(error);
      process.exit(1);
    },
  );
}
