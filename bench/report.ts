import type { UpgradeSettings } from '../lambdas/core/index.ts';
import { MAX_ADAPTIVE_BATCH_SIZE } from '../lambdas/core/migrate/batch-size-controller.ts';
import { markdownTable } from '../scripts/markdown-table.ts';
import type { Machine } from './lib/machine.ts';
import { bytes, ms, num, pct, times } from './lib/stats.ts';
import type { BundleFigures } from './sections/bundles.ts';
import type { DataApiFigures } from './sections/data-api.ts';
import type { ImpactFigures } from './sections/impact.ts';
import type { PgbenchFigures } from './sections/pgbench.ts';
import { P99_LIMIT, settingName, type SweepFigures } from './sections/sweep.ts';
import type { ThroughputFigures } from './sections/throughput.ts';
import type { TransitionFigures } from './sections/transitions.ts';

export interface Target {
  readonly section: string;
  readonly target: string;
  readonly measured: string;
  readonly pass: boolean;
  /**
   * How far the measurement is from the target's limit, as a fraction of it (positive: on the good side), for the
   * numeric targets; the run-to-run noise of the machine is about ±10%.
   */
  readonly margin?: number;
}

export interface ReportInput {
  readonly date: Date;
  readonly size: string;
  readonly command: string;
  readonly durationMs: number;
  readonly machine: Machine;
  readonly engineDefaults: UpgradeSettings;
  readonly throughput: ThroughputFigures;
  readonly impact: ImpactFigures;
  readonly transitions: TransitionFigures;
  readonly bundles: BundleFigures;
  readonly sweep: SweepFigures;
  readonly dataApi: DataApiFigures;
  readonly pgbench: PgbenchFigures;
  readonly targets: readonly Target[];
  /** 1-minute load average when each section started, and at the end. */
  readonly load: readonly { readonly at: string; readonly load1: number }[];
}

/** The headings every report has, in order (the smoke test checks them). */
export const HEADINGS = [
  '# emc-upgrade benchmarks',
  '## Machine and settings',
  '## Targets',
  '## 1. Migrate throughput',
  '## 2. Per-batch time at 10% vs 90% progress',
  '## 3. Application impact during migrate',
  '## 4. State transitions of a full execution',
  '## 5. Lambda bundle size and initialisation',
  '## 6. Target batch duration sweep',
  '## 7. Migrate through the RDS Data API (emulated latency)',
  '## 8. pgbench TPC-B during a backfill and a contract',
] as const;

const passFail = (pass: boolean) => (pass ? '**PASS**' : '**FAIL**');

/** A bullet list from the notes that apply (falsy ones are left out). */
function notes(...items: (string | false | undefined)[]): string {
  return items.filter((i): i is string => Boolean(i)).map((i) => `- ${i}`).join('\n');
}

export function renderReport(r: ReportInput): string {
  const { machine: m, throughput: tp, impact, transitions: tr, bundles: bd, sweep, dataApi: da, pgbench: pb } = r;
  const d = r.engineDefaults;
  const blocks: string[] = [];
  const add = (...parts: string[]) => blocks.push(...parts.filter((p) => p !== ''));

  const busiest = Math.max(...r.load.map((l) => l.load1));
  add(
    HEADINGS[0],
    `Written by \`${r.command}\` on **${r.date.toISOString().slice(0, 10)}** (${r.date.toISOString()}), size preset ` +
      `**${r.size}**, in ${num(r.durationMs / 60_000, 1)} minutes. Every comparison ran side by side in this one run, on ` +
      `one embedded PostgreSQL server; the absolute numbers are this machine's, the ratios are what carries over. ` +
      `Each figure is a single measurement unless it says median.` +
      (busiest > m.cores
        ? ` **Other work was running on this machine during the run** (1-minute load average up to ${num(busiest, 1)} on ` +
          `${m.cores} cores, see below): the latencies in particular are noisier than on an idle machine.`
        : ''),
  );

  add(
    HEADINGS[1],
    markdownTable(
      ['', ''],
      [
        ['CPU', `${m.cpuModel}, ${m.cores} cores`],
        ['Memory', `${num(m.memoryGiB, 1)} GiB`],
        ['OS', m.os],
        ['Node.js', m.node],
        ['PostgreSQL', m.postgres],
        ['Server settings', Object.entries(m.postgresSettings).map(([k, v]) => `${k}=${v}`).join(', ')],
        ['Load average (1 min)', r.load.map((l) => `${l.at} ${num(l.load1, 1)}`).join(', ')],
        [
          'Engine defaults',
          `targetBatchMs ${d.targetBatchMs}, batchSize ${d.batchSize} (the first batch of each migrate call), ` +
            `batchPauseMs ${d.batchPauseMs}, lockTimeoutMs ${d.lockTimeoutMs}, ` +
            `batchStatementTimeoutMs ${d.batchStatementTimeoutMs}, migrateBudgetMs ${d.migrateBudgetMs}`,
        ],
        [
          '§1–2',
          `${num(tp.rows)} rows; engine first batch ${tp.batchSize}, then sized toward targetBatchMs ${d.targetBatchMs} ` +
            `(default), batchPauseMs 0, other settings default; bare keyset and naive batches fixed at ${tp.batchSize}; ` +
            `${tp.repeats} round${tp.repeats === 1 ? '' : 's'} per contender`,
        ],
        [
          '§3',
          `${num(impact.rows)} rows; engine defaults (adaptive batches, targetBatchMs ${impact.targetBatchMs}) and the same with batchPauseMs 0; writer pauses ${impact.writerPauseMs} ms between ` +
            `statements; pg_locks sampled every ${impact.sampleIntervalMs} ms; idle 2 × ${ms(impact.idleMs / 2)}`,
        ],
        ['§4', `demo release bexar (3 migrate steps), migrateBudgetMs ${num(tr.migrateBudgetMs)}, other settings the construct's defaults`],
        ['§5', `esbuild ${bd.esbuildVersion} with the options of lib/lambda-bundles.ts; imports timed on Node ${bd.nodeVersion}`],
        [
          '§6',
          `${num(sweep.rows)} rows; targetBatchMs ${sweep.points.filter((p) => p.targetBatchMs > 0).map((p) => p.targetBatchMs).join('/')} ` +
            `and fixed batches of ${sweep.engineDefault.batchSize} (targetBatchMs 0); batchSize ${sweep.engineDefault.batchSize}, ` +
            `batchPauseMs ${sweep.engineDefault.pauseMs}; one migrate call of migrateBudgetMs ${num(sweep.windowMs)} each; the §3 writer`,
        ],
        [
          '§7',
          `${num(da.rows)} rows; engine defaults (adaptive batches, targetBatchMs ${d.targetBatchMs}); ${da.points.map((p) => `${p.latencyMs}`).join('/')} ms added to every ` +
            `Data API call by the emulator (assumed, see §7)`,
        ],
        [
          '§8',
          pb.available
            ? `${pb.workload.version}; TPC-B scale ${pb.workload.scale} (${num(pb.workload.accounts)} accounts), ` +
              `${pb.workload.clients} clients, --rate ${pb.workload.rateTps}; engine defaults`
            : `skipped: ${pb.reason}`,
        ],
      ],
    ),
    'Every migrate contender starts from its own copy of one template database (`CREATE DATABASE … TEMPLATE … ' +
      'STRATEGY FILE_COPY`): the demo `images` table seeded, the bexar expand steps applied (two row triggers and the ' +
      '`owner_id` index in place, as during a real migrate) and `VACUUM ANALYZE`d; then `VACUUM ANALYZE images` in the ' +
      'copy and a `CHECKPOINT` before the clock starts. Each copy is dropped after its measurement, so autovacuum of an ' +
      'earlier contender never runs during a later one. Autovacuum is on, as in production.',
  );

  add(
    HEADINGS[2],
    markdownTable(
      ['Section', 'Target', 'Measured', 'Margin', 'Result'],
      r.targets.map((t) => [
        t.section,
        t.target,
        t.measured,
        t.margin === undefined ? '—' : `${t.margin >= 0 ? '+' : '−'}${num(Math.abs(t.margin) * 100)}%`,
        passFail(t.pass) + (t.margin !== undefined && Math.abs(t.margin) < 0.1 ? ' (within the noise)' : ''),
      ]),
    ),
    'Margin is how far a measurement is from its limit, as a fraction of the limit (+ on the good side). Between ' +
      'full runs on this machine the same figure moves by about ±10%, more when other work runs on it: a result within ' +
      '10% of its limit can come out either way in the next run.',
  );

  const single = tp.contenders.find((c) => c.key === 'single')!;
  const keyset = tp.contenders.find((c) => c.key === 'keyset')!;
  const bare = tp.contenders.find((c) => c.key === 'keyset-bare')!;
  const naive = tp.contenders.find((c) => c.key === 'naive')!;
  const rescan = tp.contenders.find((c) => c.key === 'naive-rescan')!;
  add(
    HEADINGS[3],
    `The demo's migrate01 backfill (\`visibility\` from \`is_public\`, with the \`visibility IS NULL\` guard) on ` +
      `${num(tp.rows)} rows, five ways, each on a fresh copy of the same table` +
      (tp.repeats > 1 ? `, ${tp.repeats} rounds (every other one in reverse order); times are medians.` : '.'),
    markdownTable(
      ['Contender', 'Rows', 'Batches', tp.repeats > 1 ? `Time (median of ${tp.repeats})` : 'Time', ...(tp.repeats > 1 ? ['Each round'] : []), 'Rows/s', 'vs single UPDATE'],
      tp.contenders.map((c) => [
        c.label + (c.calls ? ` (${c.calls} migrate call${c.calls === 1 ? '' : 's'})` : ''),
        num(c.rows),
        num(c.batches),
        ms(c.durationMs),
        ...(tp.repeats > 1 ? [c.durationsMs.map(ms).join(', ')] : []),
        num(c.rowsPerSecond),
        c.key === 'single' ? '1.00× (the limit)' : `${times(c.ratioToSingle)} (${pct(c.ratioToSingle)})`,
      ]),
    ),
    notes(
      `The single UPDATE sets the floor on time (${ms(single.durationMs)}) but keeps every row it changed locked until ` +
        `it commits (see §3) in one huge transaction: it is the limit, not an option.`,
      `Batching itself has a price: the bare keyset batches (BEGIN, the range query, the UPDATE, a COMMIT that waits ` +
        `for a WAL flush) reach ${pct(bare.ratioToSingle)} of the limit, ` +
        `${ms((bare.durationMs - single.durationMs) / Math.max(1, bare.batches))} per batch over the single UPDATE, in ` +
        `${num(bare.batches)} fixed batches of ${num(tp.batchSize)}. The engine adds its own bookkeeping to each batch ` +
        `(lease check, timeouts, the cursor row) but sizes its batches itself: from a first batch of ${num(tp.batchSize)} ` +
        `toward targetBatchMs ${d.targetBatchMs}, ${num(keyset.batches)} batches of ${num(keyset.rows / Math.max(1, keyset.batches))} ` +
        `rows on average, ${pct(keyset.ratioToSingle)} of the limit. Its comparison with the bare batches therefore ` +
        `includes the adaptive size, as the engine runs by default (§6 measures each target and fixed batches of ` +
        `${num(sweep.engineDefault.batchSize)} side by side).`,
      naive.rowsPerSecond >= keyset.rowsPerSecond * 0.9 &&
        `Naive batching keeps up here (${pct(naive.ratioToSingle)}) only because of PostgreSQL's synchronized ` +
          `sequential scans: on a table larger than a quarter of shared_buffers a scan starts where the previous one ` +
          `stopped, so each batch's \`SELECT … WHERE visibility IS NULL LIMIT n\` lands on unmigrated rows at once.`,
      `With \`synchronize_seqscans = off\` — how every scan behaves on a table smaller than a quarter of ` +
        `shared_buffers, i.e. most tables on Aurora, whose shared_buffers is most of the instance's memory — each ` +
        `naive batch rescans the migrated rows from the first page: ${pct(rescan.ratioToSingle)} of the limit here, ` +
        `and its batches slow down as it progresses (§2).`,
    ),
  );

  const keysetBatch = tp.perBatch.find((p) => p.key === 'keyset')!;
  const rescanBatch = tp.perBatch.find((p) => p.key === 'naive-rescan')!;
  add(
    HEADINGS[4],
    "Each batch's wall time (for the engine its `batch` event's `durationMs`: the whole batch transaction), median " +
      'of the batches between 5% and 15% of the run and of those between 85% and 95%.',
    markdownTable(
      ['Contender', 'Batches', 'Median batch ~10%', 'Median batch ~90%', '90% ÷ 10%', 'Batches per median'],
      tp.perBatch.map((p) => [p.label, num(p.batches), ms(p.at10Ms), ms(p.at90Ms), times(p.ratio), num(p.sampleSize)]),
    ),
    notes(
      keysetBatch.ratio <= 1.2
        ? `Keyset batches walk the primary key from the cursor: a batch late in the run costs what one early in it costs (${times(keysetBatch.ratio)}).`
        : `Keyset batches got slower late in the run (${times(keysetBatch.ratio)}). The range query walks the primary ` +
            `key from the cursor, so the work per batch does not grow; a difference here comes from the machine ` +
            `(checkpoints, autovacuum of the dead row versions, other load).`,
      rescanBatch.ratio > keysetBatch.ratio &&
        `Naive batches without synchronized scans grow ${times(rescanBatch.ratio)} from 10% to 90%: each one scans past ` +
          `every row migrated before it. The growth is linear in the rows done, so the total is quadratic in the table size.`,
    ),
  );

  const idle = impact.runs.find((x) => x.key === 'idle')!;
  const withDefaults = impact.runs.find((x) => x.key === 'keyset-default')!;
  const sweepDefault = sweep.points.find(
    (p) => p.targetBatchMs === d.targetBatchMs && p.batchSize === d.batchSize && p.pauseMs === d.batchPauseMs,
  );
  const idleP99s = impact.idleWindowsP99Ms;
  const disagree = (p99s: readonly number[]) => p99s.length === 2 && Math.max(...p99s) > 1.5 * Math.min(...p99s);
  const idleDisagree = disagree(idleP99s);
  const sweepIdleDisagree = disagree(sweep.idleWindowsP99Ms);
  add(
    HEADINGS[5],
    `A writer on its own connection, as the old release writes: single-row \`UPDATE images SET is_public = NOT ` +
      `is_public, owner = $2 WHERE id = $1\` on random existing rows and \`INSERT\`s through the old columns, two to ` +
      `one, pausing ${impact.writerPauseMs} ms between statements. Latencies are those of the writer's statements that ` +
      `started while the migrate ran (idle: ${ms(impact.idleMs / 2)} with no migrate before the runs and as long after ` +
      `them, pooled; p99 of each half ${impact.idleWindowsP99Ms.map(ms).join(' and ')}), each run on a fresh copy of the ` +
      `${num(impact.rows)}-row table. Rows/s is of the table's rows (the writer's own updates fill some rows first).`,
    markdownTable(
      [
        'Run',
        'Writes',
        'p50',
        'p99',
        'Max',
        'p50 vs idle',
        'p99 vs idle',
        'Writes seen waiting on a lock',
        'Longest lock wait (sampled, ≥)',
        'Latency of that write (≤)',
        'Migrate rows/s',
      ],
      impact.runs.map((x) => [
        x.label,
        num(x.writer.statements),
        ms(x.writer.p50Ms),
        ms(x.writer.p99Ms),
        ms(x.writer.maxMs),
        times(x.p50Ratio),
        times(x.p99Ratio),
        num(x.writer.lockWaits),
        ms(x.writer.longestLockWaitMs),
        ms(x.writer.longestLockWaitUpperMs),
        x.migrate ? num(x.migrate.rowsPerSecond) : '—',
      ]),
    ),
    notes(
      `**How lock waits are measured**: a separate connection polls \`pg_locks\` (joined to \`pg_stat_activity\`) ` +
        `every ${impact.sampleIntervalMs} ms for locks not granted in the database and keeps, for each wait, the largest ` +
        `\`clock_timestamp() - waitstart\` it saw. That is a lower bound of the wait (it may end up to one interval ` +
        `after the last sample; waits shorter than the interval can be missed); the total latency of the writer ` +
        `statement that waited is its upper bound. A write blocked by a batch waits for the batch's transaction (a ` +
        `row lock) to commit. The sampler also runs in the idle run, so its load is in both.`,
      `With the engine defaults ${num(withDefaults.writer.lockWaits)} of ${num(withDefaults.writer.statements)} writes ` +
        `were seen waiting on a lock` +
        (withDefaults.writer.lockWaits > 0 ? ` (longest ≥ ${ms(withDefaults.writer.longestLockWaitMs)})` : '') +
        `. ` +
        (withDefaults.writer.lockWaits <= withDefaults.writer.statements * 0.01
          ? `Lock waits are rare, so the added latency is mostly queueing: on ${m.cores} cores the batch's backend, ` +
            `the engine's Node.js process and the writer share the CPUs and one WAL, and every write's commit waits ` +
            `for a WAL flush that now carries the batches' changes too.`
          : `Lock waits are a visible part of the added latency.`),
      sweepDefault &&
        `The same engine default measured again in §6 (${sweep.rounds === 1 ? 'one' : sweep.rounds} × ${ms(sweep.windowMs)}, its own idle windows): writer ` +
          `p99 ${times(sweepDefault.p99Ratio)} idle, here ${times(withDefaults.p99Ratio)}. A p99 ratio moves by tens of ` +
          `percent between windows on this machine, so the target is judged on the worse of the two.`,
      idleDisagree &&
        `The two idle halves disagree (p99 ${impact.idleWindowsP99Ms.map(ms).join(' and ')}): other load on the ` +
          `machine disturbed a baseline window, which makes every "vs idle" ratio in this table look better than it is.`,
      withDefaults.migrate &&
        `A write blocked by a batch waits at most for that batch's transaction: with the engine defaults the batches ` +
          `sized themselves toward targetBatchMs ${ms(impact.targetBatchMs)} and took ` +
          `${ms(withDefaults.migrate.batchP50Ms)} (median), ${ms(withDefaults.migrate.batchMaxMs)} at the longest; the ` +
          `Targets table holds the longest lock wait against the target.`,
      `The single UPDATE shows what batching avoids: a write to a row it already changed waits until the whole ` +
        `UPDATE commits (longest wait seen ≥ ${ms(impact.runs.find((x) => x.key === 'single')!.writer.longestLockWaitMs)}).`,
    ),
  );

  add(
    HEADINGS[6],
    `Full local executions of the synthesized state machine (aws-local-stepfunctions, each Task the real handler) ` +
      `with the demo release bexar on freshly seeded tables, migrateBudgetMs ${num(tr.migrateBudgetMs)} at every size. ` +
      `A transition is a \`StateEntered\` event (Step Functions Standard bills $0.025 per 1,000).`,
    markdownTable(
      [
        'Rows',
        'Transitions',
        'Migrate calls',
        'Migrate-loop transitions',
        'Other transitions',
        'Batches',
        'Migrate time',
        'Transitions / min of migrate',
        'Loop transitions / min of migrate',
        '⌈migrate time ÷ budget⌉',
      ],
      tr.runs.map((x) => [
        num(x.rows),
        num(x.transitions),
        num(x.migrateCalls),
        num(x.loopTransitions),
        num(x.otherTransitions),
        num(x.batches),
        ms(x.migrateMs),
        num(x.transitionsPerMigrateMinute, 1),
        num(x.loopTransitionsPerMigrateMinute, 1),
        num(x.minimumCalls),
      ]),
    ),
    notes(
      `From the smallest to the largest table rows grew ${times(tr.rowGrowth)} and batches ${times(tr.batchGrowth)}; ` +
        `transitions grew ${times(tr.transitionGrowth)}. A migrate call runs batches for its whole budget, so the loop ` +
        `adds two transitions (the task and the Choice after it) per ${ms(tr.migrateBudgetMs)} of migration, ` +
        `${num((2 * 60_000) / tr.migrateBudgetMs, 1)} a minute, whatever the rows; the other transitions (start, expand, ` +
        `drain, contract, summary) are fixed. A short migration's per-minute figure is inflated by its last, partly ` +
        `used call.`,
      `With the default migrateBudgetMs of ${num(d.migrateBudgetMs)} ms the loop costs 2 transitions a minute of ` +
        `migration, 120 an hour: $${num((120 * 0.025) / 1000, 4)} an hour.`,
    ),
  );

  const timedRuns = Math.max(0, ...bd.bundles.map((b) => b.runs));
  const slowestExternal = [...bd.externalImports].sort((a, b) => b.importMs - a.importMs)[0];
  const timedImports = bd.bundles.filter((b) => b.runs > 0).map((b) => b.importMs);
  const timedBundleImport = timedImports.length ? timedImports.sort((a, b) => a - b)[Math.floor(timedImports.length / 2)] : undefined;
  add(
    HEADINGS[7],
    `Each \`lambdas/handlers/*.ts\` entry (\`HANDLER_ENTRIES\`) bundled with esbuild's JS API and the ` +
      `construct's options (ESM, minify, target node24, main fields module,main, externals \`@aws-sdk/*\`, pg, ` +
      `pg-native, libpg-query, the createRequire banner), the compiled demo catalog written beside it as ` +
      `\`emc-catalog.json\`. Initialisation: \`await import()\` of the bundle in a fresh \`node\` process with the ` +
      `construct's environment variables, median of ${timedRuns} processes; "ready" is process start to handler ` +
      `exported, Node's own start included. Lambda runs Node 24 on ARM64; these ran on ${bd.nodeVersion} on this CPU.`,
    markdownTable(
      ['Handler', 'Minified', 'gzip -9', 'Largest inputs', 'Imports at run time', `≤ ${bytes(bd.targetBytes)}`, 'Import (median)', 'Process start → ready (median)'],
      bd.bundles.map((b) => [
        b.handler,
        `${bytes(b.bytes)} (${num(b.bytes)} B)`,
        bytes(b.gzipBytes),
        b.largestInputs.map((i) => `${i.name} ${bytes(i.bytes)}`).join(', '),
        (b.externals.join(', ') || '—') + (b.missingInLambda.length ? ` (**not in the Lambda runtime: ${b.missingInLambda.join(', ')}**)` : ''),
        passFail(b.bytes <= bd.targetBytes),
        b.runs ? ms(b.importMs) : 'not timed',
        b.runs ? ms(b.readyMs) : 'not timed',
      ]),
    ),
    notes(
      bd.externalImports.length > 0 &&
        `Each run-time import alone, in a fresh process (median): ` +
          bd.externalImports.map((e) => `\`${e.name}\` ${ms(e.importMs)}`).join(', ') +
          `. They load from node_modules here (the bundles sit under \`bench/.out/\` inside the project) and from ` +
          `the runtime's own copy in Lambda.` +
          ' ' +
          bd.externalImports
            .map((e) => {
              const importers = bd.bundles.filter((b) => b.externals.includes(e.name)).map((b) => b.handler);
              return `\`${e.name}\` is imported by ${importers.length === bd.bundles.length ? 'every handler' : importers.join(', ') || 'no handler'}`;
            })
            .join('; ') +
          (slowestExternal && timedBundleImport && slowestExternal.importMs >= timedBundleImport / 2
            ? `: the AWS SDK clients are most of a handler's initialisation (median handler import ${ms(timedBundleImport)}).`
            : '.'),
      `"Imports at run time" are the externals a bundle still imports; the Lambda Node.js runtime provides only \`@aws-sdk/*\`.`,
    ),
  );

  const sweepFixed = sweep.points.find((p) => p.targetBatchMs === 0);
  add(
    HEADINGS[8],
    `For every target batch duration (\`targetBatchMs\`), ` +
      (sweep.rounds === 1
        ? `one engine migrate() call with a budget of ${ms(sweep.windowMs)} on a fresh copy`
        : `${sweep.rounds} engine migrate() calls with a budget of ${ms(sweep.windowMs)} each (every other round in ` +
          `reverse order; the figures pool them), each on a fresh copy`) +
      ` of the ${num(sweep.rows)}-row §1 table, with the §3 writer beside it, at ` +
      `the default batchSize ${sweep.engineDefault.batchSize} and batchPauseMs ${sweep.engineDefault.pauseMs}; last, ` +
      `the same with fixed batches of ${num(sweep.engineDefault.batchSize)} (targetBatchMs 0) as the reference. batchSize ` +
      `is only the first batch of each migrate call: from there each batch is sized from the measured time of the ` +
      `ones before it toward the target, so the target is what this sweep chooses. The pause stays at its default: ` +
      `with batches of a set duration it idles the database a fixed share of the time (pause ÷ (target + pause)). ` +
      `Every setting gets the same window, so the writer's percentiles rest on about the same number of writes. ` +
      `Rows/s is keys the cursor covered ÷ the call's time. Idle writer, one window before the sweep and one after ` +
      `it, pooled: p50 ${ms(sweep.idle.p50Ms)}, p99 ${ms(sweep.idle.p99Ms)} (${num(sweep.idle.statements)} writes; ` +
      `p99 of each window ${sweep.idleWindowsP99Ms.map(ms).join(' and ')}). A ✗ marks a writer p99 over the §3 ` +
      `target of ${P99_LIMIT}× idle, or a lock wait longer than the target.`,
    markdownTable(
      [
        'targetBatchMs',
        'Rows/s',
        'Batches',
        'Batch rows (median / max)',
        'Batch p50',
        'Batch max',
        'Writes',
        'Writer p50',
        'Writer p99',
        'p99 vs idle',
        'Longest lock wait (≤)',
        'Note',
      ],
      sweep.points.map((p) => {
        const fixed = p.targetBatchMs === 0;
        const marks = [
          fixed ? 'fixed-batch reference' : '',
          !fixed && p.targetBatchMs === sweep.engineDefault.targetBatchMs ? 'engine default' : '',
          !fixed && p.targetBatchMs === sweep.recommended ? '**recommended**' : '',
          p.finishedTable ? 'covered the whole table before the window ended' : '',
        ].filter(Boolean);
        return [
          fixed ? `0 (fixed ${num(p.batchSize)})` : `${p.targetBatchMs} ms`,
          num(p.rowsPerSecond),
          num(p.batches),
          `${num(p.batchSizeP50)} / ${num(p.batchSizeMax)}`,
          ms(p.batchP50Ms),
          ms(p.batchMaxMs),
          num(p.writer.statements),
          ms(p.writer.p50Ms),
          ms(p.writer.p99Ms),
          times(p.p99Ratio) + (p.p99Ratio <= P99_LIMIT ? '' : ' ✗'),
          (p.writer.lockWaits === 0 ? 'none seen' : ms(p.lockWaitMs)) + (!fixed && p.lockWaitMs > p.targetBatchMs ? ' ✗' : ''),
          marks.join(', '),
        ];
      }),
    ),
    (sweep.recommended === undefined
      ? `**No target recommended from this run.** `
      : `**Recommended: targetBatchMs ${sweep.recommended}** (the engine default is ${sweep.engineDefault.targetBatchMs}). `) +
      sweep.reason,
    notes(
      `Longest lock wait: the longest a writer statement was seen waiting on a lock, estimated from above as in the ` +
        `Targets table (the sampled wait plus one ${sweep.sampleIntervalMs} ms sampling interval, at most that ` +
        `statement's whole latency). A batch keeps its rows locked until it commits ("Batch p50/max"), so a write to ` +
        `one of those rows waits at most about one batch: the target bounds it.`,
      sweepIdleDisagree &&
        `The two idle windows disagree (p99 ${sweep.idleWindowsP99Ms.map(ms).join(' and ')}): other load on the ` +
          `machine disturbed a baseline window, so the "vs idle" ratios in this table look better than they are.`,
      sweep.points.some((p) => p.targetBatchMs > 0 && p.batchSizeMax >= MAX_ADAPTIVE_BATCH_SIZE) &&
        `Batches of ${num(MAX_ADAPTIVE_BATCH_SIZE)} rows are the adaptive size's ceiling (\`MAX_ADAPTIVE_BATCH_SIZE\`): ` +
          `a target whose batches reach it runs shorter batches than it asks for, and larger targets than that one ` +
          `measure the same setting again.`,
      sweepFixed &&
        `The reference row is how the engine batched before batches sized themselves: every batch ` +
          `${num(sweepFixed.batchSize)} rows whatever it costs, ${ms(sweepFixed.batchP50Ms)} each here (median).`,
      `Not measured here: Aurora's commit is a quorum write to storage in three zones, slower than this machine's ` +
        `local fsync; and through the RDS Data API every call is an HTTPS round trip (§7): the fixed cost per batch is ` +
        `larger there, so a given target holds fewer rows per batch there than here and the round trip is a larger ` +
        `share of a short target.`,
    ),
  );
  const at = (latencyMs: number) => da.points.find((p) => p.latencyMs === latencyMs);
  const mid = at(10) ?? da.points[Math.floor(da.points.length / 2)];
  const rounds = Math.max(0, ...da.points.map((p) => p.roundsMs.keyset.length));
  const roundTimes = (list: readonly number[]) => list.map((t) => ms(t)).join(', ');
  add(
    HEADINGS[9],
    `What ships, over the wire: the engine's migrate with its default settings (batches sized toward targetBatchMs ` +
      `${d.targetBatchMs} from a first batch of ${d.batchSize} rows, batchPauseMs ${d.batchPauseMs}) on fresh copies of the §1 table seeded with ${num(da.rows)} rows, through the ` +
      `real \`DataApiSqlClient\` and \`@aws-sdk/client-rds-data\` against the Data API emulator ` +
      `(\`bin/local/data-api-emulator\`), which waits the given latency before answering each call; beside it the single ` +
      `UPDATE as one ExecuteStatement through the same emulator at the same latency` +
      (rounds > 1
        ? `, ${rounds} rounds of each (every other one in reverse order); each side's figures are those of its round of median time`
        : '') +
      `. Calls are counted by the emulator; ` +
      `calls per batch are those between two consecutive batches of one migrate call (median, and the range seen).`,
    markdownTable(
      ['Latency per call', 'Engine keyset', 'Batches', 'Migrate calls', 'Data API calls', 'Calls per batch', 'Batch p50', 'Rows/s', 'Single UPDATE', 'Its calls', 'Its rows/s', 'Keyset ÷ single'],
      da.points.map((p) => [
        `${p.latencyMs} ms`,
        ms(p.keyset.durationMs),
        num(p.keyset.batches),
        num(p.keyset.migrateCalls),
        num(p.keyset.dataApiCalls),
        `${num(p.keyset.callsPerBatch)}` +
          (p.keyset.callsPerBatchMin !== p.keyset.callsPerBatchMax ? ` (${num(p.keyset.callsPerBatchMin)}–${num(p.keyset.callsPerBatchMax)})` : ''),
        ms(p.keyset.batchP50Ms),
        num(p.keyset.rowsPerSecond),
        ms(p.single.durationMs),
        num(p.single.dataApiCalls),
        num(p.single.rowsPerSecond),
        times(p.ratio),
      ]),
    ),
    notes(
      `**The latencies are assumptions, not measurements.** From a Lambda function, each Data API call is an HTTPS ` +
        `request to the regional endpoint (SigV4 signing, TLS on a kept-alive connection, the service's own connection ` +
        `to the writer instance); AWS publishes no figure for its latency, and nothing here can measure it. The nearest ` +
        `published number found (Vadym Kazulkin, dev.to, "Data API for Amazon Aurora Serverless v2 with AWS SDK for ` +
        `Java – Part 5") is a warm p50 of about 105 ms for a whole API Gateway → Lambda → Data API request, which does ` +
        `not isolate the call. 5, 10 and 20 ms span a fast call within a region to a slow one; the ratio at each ` +
        `latency shows how much the conclusion rests on the assumption.`,
      mid &&
        `The per-batch cost is calls × latency plus what each call costs this machine (the SDK, HTTP on loopback, the ` +
          `emulator's own work and its reset of the pooled connection): at ${mid.latencyMs} ms a batch took ` +
          `${ms(mid.keyset.batchP50Ms)} (median) for ${num(mid.keyset.callsPerBatch)} call${mid.keyset.callsPerBatch === 1 ? '' : 's'}, ` +
          `${ms(mid.keyset.callsPerBatch * mid.latencyMs)} of it injected latency.`,
      mid &&
        d.batchPauseMs > 0 &&
        `The default batchPauseMs of ${d.batchPauseMs} ms is the database's gap between two batches; each call's time ` +
          `outside the database (its round trip, at least the ${mid.latencyMs} ms injected) counts toward it, so the ` +
          `engine itself waits only the rest: at most ${ms(mid.keyset.batches * Math.max(0, d.batchPauseMs - mid.latencyMs))} ` +
          `of the keyset's ${ms(mid.keyset.durationMs)} at ${mid.latencyMs} ms. The throughput here is that of the defaults, pause included.`,
      mid &&
        `Besides its batches, each migrate call makes about ` +
          `${num(Math.max(0, mid.keyset.dataApiCalls - mid.keyset.batches * mid.keyset.callsPerBatch) / Math.max(1, mid.keyset.migrateCalls))} ` +
          `calls of its own (the state schema check, the state read, the key check, the step's start, the pending query ` +
          `at the end of a pass, the step's record, the report).`,
      `The single UPDATE is one call whatever the latency: it is the limit here as in §1, and keeps every row it ` +
        `changes locked until it commits.`,
      rounds > 1 &&
        `Each round's time, engine keyset and single UPDATE: ` +
          da.points.map((p) => `at ${p.latencyMs} ms ${roundTimes(p.roundsMs.keyset)} and ${roundTimes(p.roundsMs.single)}`).join('; ') +
          '.',
    ),
  );

  if (!pb.available) {
    add(HEADINGS[10], `Skipped: ${pb.reason}. Install Debian's \`postgresql-client\` (it ships pgbench) to run this section.`);
  } else {
    const idlePhase = pb.phases.find((p) => p.key === 'idle')!;
    const migratePhase = pb.phases.find((p) => p.key === 'migrate');
    const cores = (value: number | undefined) => (value === undefined ? 'n/a' : num(value, 2));
    const other = (c: (typeof pb.phases)[number]['cpu']) =>
      c.machineCores === undefined || c.postgresCores === undefined || c.workloadCores === undefined
        ? undefined
        : Math.max(0, c.machineCores - c.runnerCores - c.postgresCores - c.workloadCores);
    add(
      HEADINGS[10],
      `pgbench's built-in TPC-B (a workload written outside this project: ${pb.workload.version}) on its own tables at ` +
        `scale ${pb.workload.scale} (${num(pb.workload.accounts)} accounts), ${pb.workload.clients} clients on one ` +
        `thread, prepared statements, \`--rate ${pb.workload.rateTps}\`: transactions are scheduled, and a latency counts ` +
        `from the scheduled start, so queueing behind a slow transaction shows. pgbench runs throughout while the engine ` +
        `applies a release to \`pgbench_accounts\`: expand (a bigint column \`abalance_cents\` and a trigger keeping it ` +
        `in step with \`abalance\`, before the clock starts), migrate (a keyset backfill, engine defaults) and contract ` +
        `(\`ADD CONSTRAINT … CHECK (abalance_cents IS NOT NULL) NOT VALID\`, \`VALIDATE\`, \`SET NOT NULL\`, \`DROP ` +
        `CONSTRAINT\`: one step, one transaction). Figures from pgbench's per-transaction log; a transaction counts in ` +
        `every phase its run overlapped. CPU is in cores (1.00 = one core busy for the whole phase) out of ${m.cores}, ` +
        `from \`process.cpuUsage()\` for the benchmark's own process and \`/proc\` for the others.`,
      markdownTable(
        ['Phase', 'Wall', 'Transactions', 'Failed', 'p50', 'p99', 'Max', 'p99 vs idle', 'CPU: runner', 'CPU: PostgreSQL', 'CPU: pgbench', 'CPU: other processes', 'CPU: machine'],
        pb.phases.map((p) => [
          p.label,
          ms(p.wallMs),
          num(p.transactions),
          num(p.failed),
          ms(p.p50Ms),
          ms(p.p99Ms),
          ms(p.maxMs),
          times(p.p99Ms / idlePhase.p99Ms),
          cores(p.cpu.runnerCores),
          cores(p.cpu.postgresCores),
          cores(p.cpu.workloadCores),
          cores(other(p.cpu)),
          cores(p.cpu.machineCores),
        ]),
      ),
      notes(
        `The migrate changed ${num(pb.migrate.rows)} rows in ${num(pb.migrate.batches)} batches (median ` +
          `${ms(pb.migrate.batchP50Ms)}, longest ${ms(pb.migrate.batchMaxMs)}); TPC-B's own updates of ` +
          `\`abalance\` fill the new column through the trigger first.`,
        `Failed transactions are those pgbench logged as failed (a serialization failure or a deadlock, which it does ` +
          `not retry by default); ${pb.abortedClients === 0 ? 'no client aborted' : `**${pb.abortedClients} client(s) aborted** on another error`}.`,
        migratePhase &&
          `**The runner's own share**: during migrate the benchmark's Node.js process (the engine and its bookkeeping, ` +
            `the samplers) used ${cores(migratePhase.cpu.runnerCores)} cores, PostgreSQL ${cores(migratePhase.cpu.postgresCores)} ` +
            `(all backends: the engine's batches and pgbench's transactions), pgbench ${cores(migratePhase.cpu.workloadCores)}, ` +
            `on a machine of ${m.cores} cores. On AWS the runner is a Lambda function and the database an Aurora writer: ` +
            `the runner's CPU is this machine's cost, not the application's; what batching costs the application is the ` +
            `database's share and the locks it holds.`,
        pb.phases.some((p) => (other(p.cpu) ?? 0) > 0.25) &&
          `Other processes on the machine used up to ${cores(Math.max(...pb.phases.map((p) => other(p.cpu) ?? 0)))} cores ` +
            `during a phase: work outside this benchmark competed for the CPUs, and the latencies are noisier for it.`,
        `Contract is one transaction: \`VALIDATE CONSTRAINT\` scans \`pgbench_accounts\` under a SHARE UPDATE ` +
          `EXCLUSIVE lock (TPC-B's updates go on), then \`SET NOT NULL\` takes ACCESS EXCLUSIVE until the commit but ` +
          `uses the validated check instead of a scan; the check was added NOT VALID in expand, so new writes met it ` +
          `from then on.`,
      ),
    );
  }
  return `${blocks.join('\n\n')}\n`;
}
