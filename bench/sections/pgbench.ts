import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { contract, expand, loadCatalog, PgSqlClient, type Catalog } from '../../lambdas/core/index.ts';
import { engineToEnd } from '../lib/contenders.ts';
import { CpuMeter, parentPid, type CpuReading, type CpuShare } from '../lib/cpu.ts';
import { ENGINE_APPLICATION_NAME, engineContext, type BenchServer } from '../lib/postgres.ts';
import { max, median, percentile } from '../lib/stats.ts';

export type PgbenchPhaseKey = 'idle' | 'migrate' | 'contract' | 'after';

export interface PgbenchPhase {
  readonly key: PgbenchPhaseKey;
  readonly label: string;
  readonly wallMs: number;
  /** pgbench transactions whose run overlapped the phase's window. */
  readonly transactions: number;
  /** Of those, the ones pgbench logged as failed (serialization failures and deadlocks: pgbench retries neither). */
  readonly failed: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  readonly cpu: CpuShare;
}

export interface PgbenchWorkload {
  readonly version: string;
  readonly scale: number;
  readonly accounts: number;
  readonly clients: number;
  /** pgbench's `--rate`: transactions a second in all, scheduled; a latency counts from the scheduled start. */
  readonly rateTps: number;
}

export type PgbenchFigures =
  | { readonly available: false; readonly reason: string }
  | {
      readonly available: true;
      readonly workload: PgbenchWorkload;
      readonly phases: readonly PgbenchPhase[];
      /** Clients pgbench reported as aborted (an error other than a serialization failure or deadlock). */
      readonly abortedClients: number;
      readonly migrate: { readonly rows: number; readonly batches: number; readonly batchP50Ms: number; readonly batchMaxMs: number };
      readonly contractSteps: number;
    };

export interface PgbenchSizes {
  readonly scale: number;
  readonly clients: number;
  readonly rateTps: number;
  readonly idleMs: number;
}

const DATABASE = 'bench_pgbench';

/**
 * The release this section applies to pgbench's own tables, written as a user of the engine would: a new column
 * kept in step by a trigger while the application writes the old one, with a NOT VALID check that new writes must
 * meet; a keyset backfill; and a contract that validates the check (no write blocked during its scan) and lets
 * SET NOT NULL use it instead of scanning under an exclusive lock, as emc lint asks.
 */
const RELEASE: Record<string, string> = {
  'expand01_add_abalance_cents.sql': `ALTER TABLE pgbench_accounts ADD COLUMN abalance_cents bigint;

CREATE FUNCTION pgbench_accounts_sync_cents() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.abalance_cents := NEW.abalance::bigint * 100;
  RETURN NEW;
END
$$;

CREATE TRIGGER pgbench_accounts_sync_cents BEFORE INSERT OR UPDATE OF abalance ON pgbench_accounts
  FOR EACH ROW EXECUTE FUNCTION pgbench_accounts_sync_cents();

ALTER TABLE pgbench_accounts ADD CONSTRAINT pgbench_accounts_cents_present CHECK (abalance_cents IS NOT NULL) NOT VALID;
`,
  'migrate01_backfill_abalance_cents.sql': `-- emc:keyset table=pgbench_accounts key=aid
-- emc:pending SELECT count(*) FROM pgbench_accounts WHERE abalance_cents IS NULL
UPDATE pgbench_accounts
SET abalance_cents = abalance::bigint * 100
WHERE aid BETWEEN :from_key AND :to_key
  AND abalance_cents IS NULL;
`,
  'contract01_require_abalance_cents.sql': `ALTER TABLE pgbench_accounts VALIDATE CONSTRAINT pgbench_accounts_cents_present;
ALTER TABLE pgbench_accounts ALTER COLUMN abalance_cents SET NOT NULL;
ALTER TABLE pgbench_accounts DROP CONSTRAINT pgbench_accounts_cents_present;
`,
};

async function tpcbCatalog(): Promise<Catalog> {
  const directory = mkdtempSync(join(tmpdir(), 'emc-bench-pgbench-catalog-'));
  mkdirSync(join(directory, 'tpcb'));
  writeFileSync(join(directory, 'releases.json'), JSON.stringify({ releases: ['tpcb'] }));
  for (const [file, sql] of Object.entries(RELEASE)) writeFileSync(join(directory, 'tpcb', file), sql);
  return loadCatalog(directory);
}

/** pgbench's version line, or why it cannot run here. */
function pgbenchVersion(): { version: string } | { reason: string } {
  const probe = spawnSync('pgbench', ['--version'], { encoding: 'utf8' });
  if (probe.error) return { reason: `pgbench is not installed here (${(probe.error as NodeJS.ErrnoException).code ?? probe.error.message})` };
  if (probe.status !== 0) return { reason: `pgbench --version exited with ${probe.status}: ${probe.stderr.trim()}` };
  return { version: probe.stdout.trim() };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Section 8: pgbench's TPC-B (a workload written outside this project) on its own tables, rate-limited, running
 * throughout while the engine expands (before the clock), migrates with its default settings and contracts
 * `pgbench_accounts`. Latencies and failures come from pgbench's per-transaction log; CPU from /proc.
 */
export async function measurePgbench(server: BenchServer, sizes: PgbenchSizes, log: (line: string) => void): Promise<PgbenchFigures> {
  const probe = pgbenchVersion();
  if ('reason' in probe) {
    log(`  skipped: ${probe.reason}`);
    return { available: false, reason: probe.reason };
  }
  await server.createDatabase(DATABASE);
  const url = server.url(DATABASE);
  const logDirectory = mkdtempSync(join(tmpdir(), 'emc-bench-pgbench-log-'));
  const client = new PgSqlClient(url, { applicationName: ENGINE_APPLICATION_NAME });
  try {
    log(`  pgbench -i -s ${sizes.scale}…`);
    await promisify(execFile)('pgbench', ['-i', '-q', '-s', String(sizes.scale), url]);
    const catalog = await tpcbCatalog();
    const ctx = await engineContext(client, {});
    await expand(ctx, catalog);
    await client.query('VACUUM ANALYZE pgbench_accounts');
    await server.admin.query('CHECKPOINT');

    const backend = await server.admin.query<{ pid: number }>('SELECT pg_backend_pid() AS pid');
    const postmaster = parentPid(backend.rows[0]!.pid);
    const prefix = join(logDirectory, 'tx');
    // -T far beyond the run: pgbench is stopped once the phases are over. -n: the tables were just vacuumed.
    const pgbench = spawn(
      'pgbench',
      ['-n', '-M', 'prepared', '-c', String(sizes.clients), '-j', '1', '-R', String(sizes.rateTps), '-T', '86400', '--log', `--log-prefix=${prefix}`, url],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let stderr = '';
    pgbench.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    pgbench.stdout.resume();
    const exited = new Promise<number | null>((resolve) => pgbench.on('exit', (code) => resolve(code)));
    const meter = new CpuMeter(postmaster, pgbench.pid);

    const windows: { key: PgbenchPhaseKey; label: string; fromEpochMs: number; toEpochMs: number; from: CpuReading; to: CpuReading }[] = [];
    const phase = async <T>(key: PgbenchPhaseKey, label: string, work: () => Promise<T>): Promise<T> => {
      log(`  pgbench running: ${label}…`);
      const fromEpochMs = Date.now();
      const from = meter.read();
      const result = await work();
      windows.push({ key, label, fromEpochMs, toEpochMs: Date.now(), from, to: meter.read() });
      return result;
    };
    let migrateRun: Awaited<ReturnType<typeof engineToEnd>>;
    let contractSteps: number;
    try {
      await sleep(1000); // connections and prepared statements
      await phase('idle', 'idle (expanded, no migrate)', () => sleep(sizes.idleMs));
      migrateRun = await phase('migrate', 'engine migrate (keyset, default settings)', () => engineToEnd(client, catalog, {}));
      contractSteps = (await phase('contract', 'engine contract', () => contract(ctx, catalog, undefined, { drainConfirmed: true }))).stepsRun.length;
      await phase('after', 'idle after contract', () => sleep(sizes.idleMs / 2));
      // pgbench writes its log through stdio buffers: a second more, so what it loses when stopped is after the window.
      await sleep(1000);
    } finally {
      pgbench.kill('SIGINT');
      await exited;
    }

    const transactions = readTransactions(logDirectory);
    const phases = windows.map((w): PgbenchPhase => {
      const inWindow = transactions.filter((t) => t.startEpochMs <= w.toEpochMs && t.endEpochMs >= w.fromEpochMs);
      const latencies = inWindow.filter((t) => t.latencyMs !== undefined).map((t) => t.latencyMs!);
      return {
        key: w.key,
        label: w.label,
        wallMs: w.toEpochMs - w.fromEpochMs,
        transactions: inWindow.length,
        failed: inWindow.length - latencies.length,
        p50Ms: percentile(latencies, 50),
        p99Ms: percentile(latencies, 99),
        maxMs: max(latencies),
        cpu: CpuMeter.share(w.from, w.to),
      };
    });
    const abortedClients = (stderr.match(/client \d+ aborted/g) ?? []).length;
    for (const p of phases) {
      log(`  ${p.label}: ${p.transactions} transactions, p50 ${p.p50Ms.toFixed(2)} ms, p99 ${p.p99Ms.toFixed(2)} ms, max ${p.maxMs.toFixed(1)} ms, ${p.failed} failed`);
    }
    return {
      available: true,
      workload: { version: probe.version, scale: sizes.scale, accounts: sizes.scale * 100_000, clients: sizes.clients, rateTps: sizes.rateTps },
      phases,
      abortedClients,
      migrate: {
        rows: migrateRun.rows,
        batches: migrateRun.batches,
        batchP50Ms: median(migrateRun.batchDurationsMs),
        batchMaxMs: max(migrateRun.batchDurationsMs),
      },
      contractSteps,
    };
  } finally {
    await client.close();
    rmSync(logDirectory, { recursive: true, force: true });
    await server.dropDatabase(DATABASE);
  }
}

interface Transaction {
  readonly startEpochMs: number;
  readonly endEpochMs: number;
  /** undefined: pgbench logged the transaction as failed. */
  readonly latencyMs: number | undefined;
}

/**
 * pgbench's per-transaction log: `client_id transaction_no time script_no time_epoch time_us [schedule_lag ...]`,
 * `time` the latency in µs (from the scheduled start under --rate) or `failed`, and time_epoch + time_us when the
 * transaction completed. A line cut short when pgbench was stopped is skipped.
 */
function readTransactions(directory: string): Transaction[] {
  const transactions: Transaction[] = [];
  for (const file of readdirSync(directory)) {
    for (const line of readFileSync(join(directory, file), 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields.length < 6) continue;
      const [, , time, , epoch, micros] = fields;
      const endEpochMs = Number(epoch) * 1000 + Number(micros) / 1000;
      if (!Number.isFinite(endEpochMs)) continue;
      const latencyMs = /^\d+$/.test(time!) ? Number(time) / 1000 : undefined;
      transactions.push({ startEpochMs: endEpochMs - (latencyMs ?? 0), endEpochMs, latencyMs });
    }
  }
  return transactions;
}
