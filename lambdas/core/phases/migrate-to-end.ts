import type { Catalog } from '../catalog/step.ts';
import { migrate, type MigrateOptions, type MigrateResult } from './migrate.ts';
import type { RunContext } from './run-context.ts';

export interface MigrateToEndOptions extends MigrateOptions {
  readonly target?: string;
  /** Stop once a call's result satisfies it; default: the call that reports `finished`, as the state machine does. */
  readonly until?: (result: MigrateResult) => boolean;
  /** Called before every call (`call` counts from 1). */
  readonly beforeCall?: (call: number) => void;
  /** Called after every call, before the next one starts. */
  readonly afterCall?: (result: MigrateResult) => Promise<void> | void;
  /** @default 10_000 */
  readonly maxCalls?: number;
}

/**
 * The state machine's migrate loop ("Migrate" until "Migration finished?") without Step Functions, for code that
 * drives the engine itself (the tests, the benchmark): calls migrate until finished (or `until`) and returns every
 * call's result, in order. Each call runs within `settings.migrateBudgetMs`, as in the Lambda task.
 */
export async function migrateToEnd(ctx: RunContext, catalog: Catalog, options: MigrateToEndOptions = {}): Promise<MigrateResult[]> {
  const { target, until = (r) => r.finished, beforeCall, afterCall, maxCalls = 10_000, ...migrateOptions } = options;
  const results: MigrateResult[] = [];
  while (results.length < maxCalls) {
    beforeCall?.(results.length + 1);
    const result = await migrate(ctx, catalog, target, migrateOptions);
    results.push(result);
    await afterCall?.(result);
    if (until(result) || result.finished) return results;
  }
  throw new Error(`migrate did not finish in ${maxCalls} calls`);
}
