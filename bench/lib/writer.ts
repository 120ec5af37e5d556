import pg from 'pg';
import { ApplicationWriter, type ReleaseWorkload, type WriterStatement } from '../../bin/local/application-writer.ts';
import { max, percentile } from './stats.ts';
import { ENGINE_APPLICATION_NAME } from './postgres.ts';

export const WRITER_APPLICATION_NAME = 'emc-bench-writer';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The application, as release n-1 writes: single-row UPDATEs of random existing rows through the old columns
 * (is_public, owner: the expand triggers carry them over) and INSERTs, two to one, with a short pause between
 * statements (about 150 statements a second), on the shared application writer, which times each statement.
 */
// Nothing is checked afterwards: the rows it writes need no ledger.
const OLD_RELEASE_WRITES: ReleaseWorkload<Record<string, never>> = {
  async insert(db, n, random) {
    const result = await db.query<{ id: string }>('INSERT INTO images (name, owner, is_public) VALUES ($1, $2, $3) RETURNING id', [
      `bench-writer-${n}`,
      `tenant-${n % 500}`,
      random() < 0.5,
    ]);
    return { id: Number(result.rows[0]!.id), row: {} };
  },
  async update(db, id, n) {
    await db.query('UPDATE images SET is_public = NOT is_public, owner = $2 WHERE id = $1', [id, `tenant-${n % 500}`]);
    return {};
  },
};

interface SampledWait {
  readonly applicationName: string;
  readonly waitStartEpochMs: number;
  longestSampledMs: number;
}

/**
 * Polls pg_locks every `intervalMs` for locks not yet granted in the database (a row lock conflict shows as a
 * wait on the other transaction's id) and keeps, for each wait, the longest `clock_timestamp() - waitstart` seen.
 * A sampled wait is a lower bound of the real one (it may end up to one interval after the last sample); waits
 * shorter than the interval can be missed.
 */
class LockSampler {
  private readonly client: pg.Client;
  private readonly waits = new Map<string, SampledWait>();
  private stopping = false;
  private loop: Promise<void> | undefined;
  samples = 0;

  constructor(
    url: string,
    private readonly intervalMs: number,
  ) {
    this.client = new pg.Client({ connectionString: url, application_name: 'emc-bench-lock-sampler' });
  }

  async start(): Promise<void> {
    await this.client.connect();
    this.loop = this.run();
  }

  async stop(): Promise<SampledWait[]> {
    this.stopping = true;
    await this.loop;
    await this.client.end();
    return [...this.waits.values()];
  }

  private async run(): Promise<void> {
    while (!this.stopping) {
      const result = await this.client.query<{ application_name: string; pid: number; waitstart_ms: number; waited_ms: number }>(
        `SELECT a.application_name, l.pid,
                (extract(epoch FROM l.waitstart) * 1000)::float8 AS waitstart_ms,
                (extract(epoch FROM clock_timestamp() - l.waitstart) * 1000)::float8 AS waited_ms
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE NOT l.granted AND l.waitstart IS NOT NULL AND a.datname = current_database()`,
      );
      this.samples++;
      for (const row of result.rows) {
        const key = `${row.pid}:${row.waitstart_ms}`;
        const wait = this.waits.get(key);
        if (wait) wait.longestSampledMs = Math.max(wait.longestSampledMs, row.waited_ms);
        else this.waits.set(key, { applicationName: row.application_name, waitStartEpochMs: row.waitstart_ms, longestSampledMs: row.waited_ms });
      }
      await sleep(this.intervalMs);
    }
  }
}

export interface WriterFigures {
  readonly statements: number;
  readonly failed: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** Writer statements the sampler saw waiting for a lock. */
  readonly lockWaits: number;
  /** Longest lock wait of a writer statement as sampled (a lower bound); 0 when none was seen. */
  readonly longestLockWaitMs: number;
  /** The whole latency of the statement that waited longest (an upper bound of its wait); 0 when none. */
  readonly longestLockWaitUpperMs: number;
  /** Longest lock wait the engine's own connections were seen in (lower bound); 0 when none. */
  readonly engineLongestLockWaitMs: number;
  readonly lockSamples: number;
  /** Every counted write's latency, for pooling windows. */
  readonly latenciesMs: readonly number[];
}

/** Several windows of the same writer as one: percentiles over all their writes, the worst lock waits. */
export function pooled(windows: readonly WriterFigures[]): WriterFigures {
  const latencies = windows.flatMap((w) => w.latenciesMs);
  const most = (pick: (w: WriterFigures) => number) => windows.reduce((m, w) => Math.max(m, pick(w)), 0);
  const sum = (pick: (w: WriterFigures) => number) => windows.reduce((n, w) => n + pick(w), 0);
  return {
    statements: sum((w) => w.statements),
    failed: sum((w) => w.failed),
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    maxMs: max(latencies),
    lockWaits: sum((w) => w.lockWaits),
    longestLockWaitMs: most((w) => w.longestLockWaitMs),
    longestLockWaitUpperMs: most((w) => w.longestLockWaitUpperMs),
    engineLongestLockWaitMs: most((w) => w.engineLongestLockWaitMs),
    lockSamples: sum((w) => w.lockSamples),
    latenciesMs: latencies,
  };
}

export interface WriterOptions {
  readonly maxId: number;
  readonly pauseMs?: number;
  readonly sampleIntervalMs?: number;
  /** Writer statements before the work starts, not counted (connection and plan warm-up). */
  readonly warmupMs?: number;
}

/**
 * Runs `work` with the writer and the lock sampler running beside it, and reports the writer's statements that
 * started while `work` ran.
 */
export async function withWriter<T>(
  url: string,
  options: WriterOptions,
  work: () => Promise<T>,
): Promise<{ result: T; writer: WriterFigures; windowMs: number }> {
  const writer = new ApplicationWriter({
    databaseUrl: url,
    applicationName: WRITER_APPLICATION_NAME,
    workload: OLD_RELEASE_WRITES,
    owned: Array.from({ length: options.maxId }, (_, i) => i + 1),
    pauseMs: options.pauseMs ?? 5,
  });
  const sampler = new LockSampler(url, options.sampleIntervalMs ?? 10);
  await sampler.start();
  writer.start();
  let statements: WriterStatement[] = [];
  let waits: SampledWait[] = [];
  let windowStart = 0;
  let windowEnd = 0;
  let result: T;
  try {
    await sleep(options.warmupMs ?? 300);
    windowStart = Date.now();
    const started = performance.now();
    result = await work();
    windowEnd = windowStart + (performance.now() - started);
  } finally {
    statements = [...(await writer.stop()).statements];
    waits = await sampler.stop();
  }
  const inWindow = statements.filter((s) => s.startEpochMs >= windowStart && s.startEpochMs <= windowEnd);
  const latencies = inWindow.filter((s) => !s.failed).map((s) => s.latencyMs);
  const inWindowWait = (w: SampledWait) => w.waitStartEpochMs >= windowStart - 2 && w.waitStartEpochMs <= windowEnd + 2;
  const writerWaits = waits.filter((w) => w.applicationName === WRITER_APPLICATION_NAME && inWindowWait(w));
  // The statement each wait belongs to: the one in flight when the wait started (same host clock; 2 ms slack).
  const owners = writerWaits.map(
    (w) => statements.find((s) => s.startEpochMs - 2 <= w.waitStartEpochMs && w.waitStartEpochMs <= s.startEpochMs + s.latencyMs + 2),
  );
  return {
    result,
    windowMs: windowEnd - windowStart,
    writer: {
      statements: inWindow.length,
      failed: inWindow.filter((s) => s.failed).length,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      maxMs: max(latencies),
      lockWaits: writerWaits.length,
      longestLockWaitMs: writerWaits.reduce((m, w) => Math.max(m, w.longestSampledMs), 0),
      longestLockWaitUpperMs: owners.reduce((m, s) => Math.max(m, s?.latencyMs ?? 0), 0),
      engineLongestLockWaitMs: waits
        .filter((w) => w.applicationName === ENGINE_APPLICATION_NAME && inWindowWait(w))
        .reduce((m, w) => Math.max(m, w.longestSampledMs), 0),
      lockSamples: sampler.samples,
      latenciesMs: latencies,
    },
  };
}

/**
 * The longest lock wait a write saw, estimated from above: a sampled wait may have gone on up to one sampling
 * interval after the last sample, and never longer than the whole statement that waited. 0 when none was seen.
 */
export function lockWaitUpperEstimateMs(writer: WriterFigures, sampleIntervalMs: number): number {
  return Math.min(writer.longestLockWaitMs + sampleIntervalMs, writer.longestLockWaitUpperMs);
}
