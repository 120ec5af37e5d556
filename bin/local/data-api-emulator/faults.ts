import { DataApiError, faultMessage } from './errors.ts';

export type Operation = 'ExecuteStatement' | 'BeginTransaction' | 'CommitTransaction' | 'RollbackTransaction';

export interface Fault {
  /** The exception's name, e.g. DatabaseResumingException, ThrottlingException, InternalServerErrorException. */
  readonly error: string;
  /** Only calls of this operation (default: any). */
  readonly operation?: Operation;
  /** How many matching calls answer with the error (default 1). */
  readonly times?: number;
  /** Only ExecuteStatement calls whose SQL contains this text. */
  readonly sqlIncludes?: string;
  readonly message?: string;
}

/**
 * Errors the real service answers that a local PostgreSQL never causes: "DatabaseResumingException ... A request was
 * canceled because the Aurora Serverless v2 DB instance was paused. The Data API request automatically resumes the
 * DB instance. Wait a few seconds and try again" (reference, DatabaseResumingException), throttling, internal errors. A faulted
 * call answers before it reaches the database, so it changes nothing, and a transaction it names stays open.
 */
export class Faults {
  private readonly pending: { fault: Fault; left: number }[] = [];

  inject(fault: Fault): void {
    const times = fault.times ?? 1;
    if (!Number.isInteger(times) || times < 1) throw new Error(`A fault's times must be a positive integer, not ${times}.`);
    this.pending.push({ fault, left: times });
  }

  /** The error the call must answer with, if an injected fault matches it (that fault then counts one use). */
  take(operation: Operation, sql: string | undefined): DataApiError | undefined {
    const index = this.pending.findIndex(
      ({ fault }) =>
        (fault.operation === undefined || fault.operation === operation) &&
        (fault.sqlIncludes === undefined || (sql !== undefined && sql.includes(fault.sqlIncludes))),
    );
    if (index < 0) return undefined;
    const entry = this.pending[index]!;
    if (--entry.left === 0) this.pending.splice(index, 1);
    return new DataApiError(entry.fault.error, entry.fault.message ?? faultMessage(entry.fault.error));
  }
}
