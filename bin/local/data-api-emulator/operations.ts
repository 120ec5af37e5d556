import type { Database } from './database.ts';
import { badRequest, DataApiError } from './errors.ts';
import { bindStatement, type WireParameter } from './parameters.ts';
import { shapeResult, type ResultShape } from './results.ts';
import type { Transactions } from './transactions.ts';

export interface Limits {
  readonly callTimeoutMs: number;
  readonly transactionIdleTimeoutMs: number;
  readonly maxResponseBytes: number;
  readonly maxSqlLength: number;
}

/** The documented limits of the real service. */
export const DATA_API_LIMITS: Limits = {
  // "the Data API cancels an operation and returns a timeout error if the operation doesn't finish processing
  // within 45 seconds" (Aurora User Guide, Controlling Data API timeout behavior).
  callTimeoutMs: 45_000,
  // "A transaction times out if there are no calls that use its transaction ID in three minutes" (BeginTransaction).
  transactionIdleTimeoutMs: 180_000,
  // "If the call returns more than 1 MiB of response data, the call is terminated" (reference, ExecuteStatement).
  maxResponseBytes: 1024 * 1024,
  // ExecuteStatement sql: "Length Constraints: Minimum length of 0. Maximum length of 65536" (reference).
  maxSqlLength: 65_536,
};

// Any well-formed ARN of an Aurora cluster and of a Secrets Manager secret is accepted: there is no IAM here.
const CLUSTER_ARN = /^arn:aws[a-z-]*:rds:[a-z0-9-]+:\d{12}:cluster:[A-Za-z0-9-]+$/;
const SECRET_ARN = /^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:.+$/;

type Body = Readonly<Record<string, unknown>>;

/** The RDS Data API operations, over PostgreSQL. */
export class Operations {
  /** Statements left running after their call timed out (continueAfterTimeout), awaited by `stop`. */
  readonly detached = new Set<Promise<unknown>>();

  constructor(
    private readonly database: Database,
    private readonly transactions: Transactions,
    private readonly limits: Limits,
  ) {}

  async beginTransaction(body: Body): Promise<object> {
    requireArns(body);
    const client = await this.database.connect(optionalString(body, 'database'));
    try {
      return { transactionId: await this.transactions.begin(client) };
    } catch (error) {
      await this.database.release(client);
      throw error;
    }
  }

  async commitTransaction(body: Body): Promise<object> {
    requireArns(body);
    await this.transactions.finish(requiredString(body, 'transactionId'), 'COMMIT');
    // CommitTransactionResponse.transactionStatus: "The status of the commit operation" (reference).
    return { transactionStatus: 'Transaction Committed' };
  }

  async rollbackTransaction(body: Body): Promise<object> {
    requireArns(body);
    await this.transactions.finish(requiredString(body, 'transactionId'), 'ROLLBACK');
    return { transactionStatus: 'Rollback Complete' };
  }

  /**
   * ExecuteStatement. "If a call isn't part of a transaction because it doesn't include the transactionID
   * parameter, changes that result from the call are committed automatically" (reference): outside a transaction
   * the statement runs alone on a connection of its own (autocommit).
   */
  async executeStatement(body: Body): Promise<object> {
    requireArns(body);
    const sql = requiredString(body, 'sql');
    if (sql.length > this.limits.maxSqlLength) {
      throw badRequest(`The sql is ${sql.length} characters long; at most ${this.limits.maxSqlLength} are allowed.`);
    }
    const parameters = Array.isArray(body.parameters) ? (body.parameters as WireParameter[]) : [];
    const statement = await bindStatement(sql, parameters);
    const shape = body as ResultShape;
    const continueAfterTimeout = body.continueAfterTimeout === true;
    const transactionId = optionalString(body, 'transactionId');
    if (transactionId !== undefined) {
      // Documentation silent on continueAfterTimeout inside a transaction; emulator's choice: the timeout cancels
      // the statement and aborts the transaction all the same (the engine sends it only outside transactions).
      return this.transactions.use(transactionId, async (client) => {
        const { result, typeNames } = await this.database.run(client, statement, {
          timeoutMs: this.limits.callTimeoutMs,
          continueAfterTimeout: false,
        });
        return this.limitSize(shapeResult(result, shape, typeNames));
      });
    }
    const client = await this.database.connect(optionalString(body, 'database'));
    let keepOpen = false;
    try {
      const { result, typeNames } = await this.database.run(client, statement, {
        timeoutMs: this.limits.callTimeoutMs,
        continueAfterTimeout,
        whenDetached: (done) => {
          keepOpen = true;
          const finished = done.finally(() => this.database.release(client));
          this.detached.add(finished);
          void finished.finally(() => this.detached.delete(finished));
        },
      });
      return this.limitSize(shapeResult(result, shape, typeNames));
    } finally {
      if (!keepOpen) await this.database.release(client);
    }
  }

  /**
   * "The Data API limits the size of the result set returned by the database to 1 MiB" (Aurora User Guide,
   * Troubleshooting: "Database response exceeded size limit"). Measured here on the serialized response body.
   * Documentation silent on the exception; emulator's choice: BadRequestException with that heading as message.
   */
  private limitSize(response: object): object {
    const bytes = Buffer.byteLength(JSON.stringify(response), 'utf8');
    if (bytes > this.limits.maxResponseBytes) throw badRequest('Database response exceeded size limit');
    return response;
  }
}

function requireArns(body: Body): void {
  const resourceArn = requiredString(body, 'resourceArn');
  const secretArn = requiredString(body, 'secretArn');
  if (!CLUSTER_ARN.test(resourceArn)) throw badRequest(`Invalid resourceArn: ${resourceArn}`);
  if (!SECRET_ARN.test(secretArn)) throw badRequest(`Invalid secretArn: ${secretArn}`);
}

function requiredString(body: Body, key: string): string {
  const value = body[key];
  if (typeof value !== 'string') throw badRequest(`The request has no ${key}.`);
  return value;
}

function optionalString(body: Body, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null || value === '') return undefined;
  if (typeof value !== 'string') throw new DataApiError('BadRequestException', `${key} must be a string.`);
  return value;
}
