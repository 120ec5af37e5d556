import { RDSDataClient } from '@aws-sdk/client-rds-data';
import { startDataApiEmulator, type DataApiEmulator } from '../../bin/local/data-api-emulator/index.ts';
import type { Catalog } from '../../lambdas/core/index.ts';
import { DataApiSqlClient } from '../../lambdas/core/sql/data-api-client.ts';
import { engineToEnd } from '../lib/contenders.ts';
import { pendingVisibility, SINGLE_UPDATE_SQL, type BenchServer } from '../lib/postgres.ts';
import { median, ratio } from '../lib/stats.ts';

export interface DataApiPoint {
  /** The latency the emulator adds to every call before answering it (an assumption, see the report). */
  readonly latencyMs: number;
  readonly keyset: {
    readonly batches: number;
    readonly migrateCalls: number;
    readonly durationMs: number;
    readonly rowsPerSecond: number;
    readonly batchP50Ms: number;
    /** Data API calls the migrate calls made (from the first one on), counted by the emulator. */
    readonly dataApiCalls: number;
    /**
     * Calls between two consecutive `batch` events of one migrate call, as the emulator counted them: the calls of
     * one batch. Median, and the smallest and largest seen.
     */
    readonly callsPerBatch: number;
    readonly callsPerBatchMin: number;
    readonly callsPerBatchMax: number;
  };
  readonly single: { readonly durationMs: number; readonly rowsPerSecond: number; readonly dataApiCalls: number };
  /** Keyset rows/s ÷ the single UPDATE's, both through the emulator at this latency (their median rounds). */
  readonly ratio: number;
  /** Every round's time, keyset and single UPDATE: `keyset` and `single` are the round of median time of each. */
  readonly roundsMs: { readonly keyset: readonly number[]; readonly single: readonly number[] };
}

export interface DataApiFigures {
  readonly rows: number;
  readonly points: readonly DataApiPoint[];
}

// Any well-formed ARNs: the emulator checks their shape only (there is no IAM locally).
const CLUSTER_ARN = 'arn:aws:rds:us-east-1:123456789012:cluster:emc-bench';
const SECRET_ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:emc-bench';

/**
 * Section 7: what ships, over the wire. For every latency, on fresh copies of a template of `rows` rows: the engine's
 * migrate with its default settings through the real `DataApiSqlClient` and `@aws-sdk/client-rds-data` against the
 * Data API emulator, and the single UPDATE as one ExecuteStatement through the same emulator at the same latency;
 * `rounds` of each (every other round in reverse order), each side's round of median time reported.
 */
export async function measureDataApi(
  server: BenchServer,
  template: string,
  catalog: Catalog,
  rows: number,
  latenciesMs: readonly number[],
  rounds: number,
  log: (line: string) => void,
): Promise<DataApiFigures> {
  const points: DataApiPoint[] = [];
  for (const latencyMs of latenciesMs) {
    const keysets: DataApiPoint['keyset'][] = [];
    const singles: DataApiPoint['single'][] = [];
    for (let round = 0; round < rounds; round++) {
      const of = rounds > 1 ? ` (round ${round + 1} of ${rounds})` : '';
      const keyset = () => measureKeyset(server, template, catalog, rows, latencyMs, of, log).then((k) => void keysets.push(k));
      const single = () => measureSingle(server, template, rows, latencyMs, of, log).then((u) => void singles.push(u));
      for (const measure of round % 2 === 0 ? [keyset, single] : [single, keyset]) await measure();
    }
    const keyset = medianRound(keysets);
    const single = medianRound(singles);
    points.push({
      latencyMs,
      keyset,
      single,
      ratio: ratio(keyset.rowsPerSecond, single.rowsPerSecond),
      roundsMs: { keyset: keysets.map((k) => k.durationMs), single: singles.map((u) => u.durationMs) },
    });
  }
  return { rows, points };
}

/** The round whose time is the median (the lower middle of an even count), with all its own figures. */
function medianRound<T extends { readonly durationMs: number }>(rounds: readonly T[]): T {
  return [...rounds].sort((a, b) => a.durationMs - b.durationMs)[Math.floor((rounds.length - 1) / 2)]!;
}

async function measureKeyset(
  server: BenchServer,
  template: string,
  catalog: Catalog,
  rows: number,
  latencyMs: number,
  of: string,
  log: (line: string) => void,
): Promise<DataApiPoint['keyset']> {
  log(`  ${latencyMs} ms per call${of}: engine keyset, default settings…`);
  const keyset = await throughEmulator(server, template, 'bench_dataapi_keyset', latencyMs, async (client, emulator) => {
    const total = () => Object.values(emulator.calls).reduce((a, b) => a + b, 0);
    // The calls counted at each `batch` event, and at the start of each migrate call (a batch's delta is only
    // taken between two events of the same call: the first batch of a call also pays for the call's own reads).
    const atBatch: { call: number; calls: number }[] = [];
    let migrateCall = 0;
    // Counted from the first migrate call: the lease and the state schema set up before it are the start's calls.
    let before: number | undefined;
    const run = await engineToEnd(client, catalog, {}, {
      onBatch: () => atBatch.push({ call: migrateCall, calls: total() }),
      onMigrateCall: () => {
        before ??= total();
        migrateCall++;
      },
    });
    const deltas = atBatch.slice(1).flatMap((b, i) => (b.call === atBatch[i]!.call ? [b.calls - atBatch[i]!.calls] : []));
    return {
      batches: run.batches,
      migrateCalls: run.calls ?? 0,
      durationMs: run.durationMs,
      rowsPerSecond: (rows / run.durationMs) * 1000,
      batchP50Ms: median(run.batchDurationsMs),
      dataApiCalls: total() - before!,
      callsPerBatch: median(deltas),
      callsPerBatchMin: deltas.length ? Math.min(...deltas) : Number.NaN,
      callsPerBatchMax: deltas.length ? Math.max(...deltas) : Number.NaN,
    };
  });
  log(
    `  ${latencyMs} ms per call${of}: engine keyset ${Math.round(keyset.durationMs)} ms, ${Math.round(keyset.rowsPerSecond)} rows/s, ` +
      `${keyset.dataApiCalls} calls, ${keyset.callsPerBatch} per batch`,
  );
  return keyset;
}

async function measureSingle(
  server: BenchServer,
  template: string,
  rows: number,
  latencyMs: number,
  of: string,
  log: (line: string) => void,
): Promise<DataApiPoint['single']> {
  const single = await throughEmulator(server, template, 'bench_dataapi_single', latencyMs, async (client, emulator) => {
    const before = Object.values(emulator.calls).reduce((a, b) => a + b, 0);
    const started = performance.now();
    await client.query(SINGLE_UPDATE_SQL);
    const durationMs = performance.now() - started;
    const calls = Object.values(emulator.calls).reduce((a, b) => a + b, 0) - before;
    return { durationMs, rowsPerSecond: (rows / durationMs) * 1000, dataApiCalls: calls };
  });
  log(`  ${latencyMs} ms per call${of}: single UPDATE ${Math.round(single.durationMs)} ms, ${Math.round(single.rowsPerSecond)} rows/s`);
  return single;
}

/**
 * A fresh copy of the template, an emulator at `latencyMs` in front of the server and a `DataApiSqlClient` on that
 * copy through it; checks that the work left no row without visibility, then drops the copy.
 */
async function throughEmulator<T>(
  server: BenchServer,
  template: string,
  database: string,
  latencyMs: number,
  work: (client: DataApiSqlClient, emulator: DataApiEmulator) => Promise<T>,
): Promise<T> {
  const url = await server.freshCopy(database, template);
  const emulator = await startDataApiEmulator({ postgresUrl: url, latencyMs });
  // maxAttempts 1: DataApiSqlClient retries what is safe to retry itself (as in lambdas/handlers/commons).
  const sdk = new RDSDataClient({
    endpoint: emulator.endpoint,
    region: 'us-east-1',
    credentials: { accessKeyId: 'emulator', secretAccessKey: 'emulator' },
    maxAttempts: 1,
  });
  const client = new DataApiSqlClient({ resourceArn: CLUSTER_ARN, secretArn: SECRET_ARN, database, client: sdk });
  try {
    const result = await work(client, emulator);
    const left = await pendingVisibility(url);
    if (left !== 0) throw new Error(`Through the Data API emulator, ${left} rows were left without visibility`);
    return result;
  } finally {
    await client.close();
    sdk.destroy();
    await emulator.stop();
    await server.dropDatabase(database);
  }
}
