import type * as drainErrors from './drain/drain-errors.ts';
import type * as engineErrors from './errors.ts';
import type { EmcError } from './errors.ts';

/** How the state machine retries one transient error: Step Functions' Retry fields, in seconds. */
export interface RetryPolicy {
  readonly intervalSeconds: number;
  readonly maxAttempts: number;
  readonly backoffRate: number;
}

/** Every module that defines engine error classes (`EmcError` subclasses). */
type ErrorModules = typeof engineErrors & typeof drainErrors;
type InstanceOf<C> = C extends abstract new (...args: never[]) => infer I ? I : never;
type ErrorOf<K extends keyof ErrorModules> = InstanceOf<ErrorModules[K]> extends EmcError ? InstanceOf<ErrorModules[K]> : never;

/** The `name` of every error class whose instances say `transient = true`, read off the classes' own types. */
export type TransientErrorName = {
  [K in keyof ErrorModules]: [ErrorOf<K>] extends [never]
    ? never
    : ErrorOf<K> extends { readonly transient: true; readonly name: infer N extends string }
      ? N
      : never;
}[keyof ErrorModules];

/**
 * The Retry rule of each transient engine error, and of no other: the keys are checked against the error classes at
 * compile time (a new class with `transient = true` and no policy here, or a policy for a class that is not
 * transient, fails `tsc`), so the state machine's Retry list is derived from the classes, not kept by hand.
 */
export const RETRY_POLICIES = {
  // Aurora Serverless waking up takes seconds to about a minute; throttling and failovers clear in seconds.
  DatabaseResumingError: { intervalSeconds: 5, maxAttempts: 6, backoffRate: 2 },
  DatabaseUnavailableError: { intervalSeconds: 5, maxAttempts: 6, backoffRate: 2 },
  // A lock held by a long application transaction: back off so as not to queue ahead of the application.
  LockTimeoutError: { intervalSeconds: 10, maxAttempts: 5, backoffRate: 2 },
  // An index build that outlived a call: poll for up to about an hour and a half.
  IndexBuildInProgressError: { intervalSeconds: 60, maxAttempts: 30, backoffRate: 1.2 },
  // A serialization failure or deadlock: the conflicting transaction is usually gone within a second.
  TransactionConflictError: { intervalSeconds: 1, maxAttempts: 5, backoffRate: 2 },
  // The Data API rolled the step's transaction back (idle, or aborted); the step is run again from the recorded state.
  TransactionNotFoundError: { intervalSeconds: 5, maxAttempts: 3, backoffRate: 2 },
  // The lease row locked by a transaction that will end: a step's (seconds), or a frozen one that the server ends after
  // idleInTransactionTimeoutMs (15 s by default, 180 s at most; these retries span about three minutes).
  LeaseBusyError: { intervalSeconds: 3, maxAttempts: 6, backoffRate: 2 },
  // An internal failure of the Data API: the outcome of the call is unknown, the step resumes from the recorded state.
  DataApiInternalError: { intervalSeconds: 5, maxAttempts: 3, backoffRate: 2 },
} as const satisfies Record<TransientErrorName, RetryPolicy>;

/** Compile-time check that every error class's `name` literal is its exported class name (the Retry contract). */
type MisnamedErrorClass = {
  [K in keyof ErrorModules]: K extends 'EmcError'
    ? never
    : [ErrorOf<K>] extends [never]
      ? never
      : ErrorOf<K>['name'] extends K
        ? never
        : K;
}[keyof ErrorModules];
export const ERROR_NAMES_ARE_CLASS_NAMES: [MisnamedErrorClass] extends [never] ? true : MisnamedErrorClass = true;
