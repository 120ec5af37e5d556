import { Database } from './database.ts';
import { Faults, type Fault, type Operation } from './faults.ts';
import { DATA_API_LIMITS, Operations, type Limits } from './operations.ts';
import { listen } from './protocol.ts';
import { Transactions } from './transactions.ts';

export type { Fault, Operation } from './faults.ts';
export { DATA_API_LIMITS, type Limits } from './operations.ts';

export interface DataApiEmulatorOptions {
  /** The PostgreSQL server behind the emulator; a request's `database` selects a database on it. */
  readonly postgresUrl: string;
  /** Added to every call before it is answered (the network and service time of the real API). Default 0. */
  readonly latencyMs?: number;
  /** Shorter limits than the real service's (DATA_API_LIMITS), for tests. */
  readonly limits?: Partial<Limits>;
}

/**
 * A local RDS Data API: an HTTP server on 127.0.0.1 that the real `@aws-sdk/client-rds-data` talks to (through
 * `endpoint` or `AWS_ENDPOINT_URL_RDS_DATA`), backed by PostgreSQL. Each behaviour cites the AWS documentation it
 * follows; where the documentation is silent, the comment says which answer the emulator picked.
 */
export interface DataApiEmulator {
  /** `http://127.0.0.1:PORT`. */
  readonly endpoint: string;
  /**
   * Environment for a process whose SDK should talk to this emulator: AWS_ENDPOINT_URL_RDS_DATA (the SDK's
   * service-specific endpoint setting), dummy AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, AWS_REGION.
   */
  readonly environment: Readonly<Record<string, string>>;
  /** The next `times` (default 1) matching calls answer `error` instead of running. */
  injectFault(fault: Fault): void;
  setLatency(ms: number): void;
  /** Calls received per operation (faulted ones included). */
  readonly calls: Readonly<Record<Operation, number>>;
  /** Rolls back open transactions, waits for statements left running, closes the server. */
  stop(): Promise<void>;
}

export async function startDataApiEmulator(options: DataApiEmulatorOptions): Promise<DataApiEmulator> {
  const limits: Limits = { ...DATA_API_LIMITS, ...options.limits };
  const database = new Database(options.postgresUrl);
  const transactions = new Transactions(database, limits.transactionIdleTimeoutMs);
  const operations = new Operations(database, transactions, limits);
  const faults = new Faults();
  const calls: Record<Operation, number> = {
    ExecuteStatement: 0,
    BeginTransaction: 0,
    CommitTransaction: 0,
    RollbackTransaction: 0,
  };
  let latencyMs = validLatency(options.latencyMs ?? 0);

  const { server, endpoint } = await listen(async (operation, body) => {
    calls[operation]++;
    if (latencyMs > 0) await new Promise((resolve) => setTimeout(resolve, latencyMs));
    const fault = faults.take(operation, typeof body.sql === 'string' ? body.sql : undefined);
    if (fault) throw fault;
    switch (operation) {
      case 'ExecuteStatement':
        return operations.executeStatement(body);
      case 'BeginTransaction':
        return operations.beginTransaction(body);
      case 'CommitTransaction':
        return operations.commitTransaction(body);
      case 'RollbackTransaction':
        return operations.rollbackTransaction(body);
    }
  });

  return {
    endpoint,
    environment: Object.freeze({
      AWS_ENDPOINT_URL_RDS_DATA: endpoint,
      AWS_ACCESS_KEY_ID: 'emulator',
      AWS_SECRET_ACCESS_KEY: 'emulator',
      AWS_REGION: 'us-east-1',
    }),
    injectFault: (fault) => faults.inject(fault),
    setLatency: (ms) => {
      latencyMs = validLatency(ms);
    },
    get calls() {
      return { ...calls };
    },
    async stop() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      await transactions.closeAll();
      await Promise.all(operations.detached);
      await database.close();
    },
  };
}

function validLatency(ms: number): number {
  if (!Number.isFinite(ms) || ms < 0) throw new Error(`The emulator's latency must be a number of ms >= 0, not ${ms}.`);
  return ms;
}
