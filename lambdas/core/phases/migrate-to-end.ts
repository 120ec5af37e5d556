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
  /**
   * Epoch milliseconds (`Date.now()`, the engine's clock) after which no call starts; each call's budget
   * (`settings.migrateBudgetMs`) is cut to end by then, but a call always gets at least 1 ms and so runs one batch.
   * @default no deadline
   */
  readonly deadline?: number;
  /** @default 10_000 */
  readonly maxCalls?: number;
}

/**
 * The state machine's migrate loop ("Migrate" until "Migration finished?") without Step Functions, for code that
 * drives the engine itself (emc migrate, the tests, the benchmark): calls migrate until finished (or `until`) and
 * returns every call's result, in order. Each call runs within `settings.migrateBudgetMs`, as in the Lambda task, and
 * none starts after `deadline`.
 */
export async function migrateToEnd(ctx: RunContext, catalog: Catalog, options: MigrateToEndOptions = {}): Promise<MigrateResult[]> {
  const { target, until = (r) => r.finished, beforeCall, afterCall, deadline, maxCalls = 10_000, ...migrateOptions } = options;
  const results: MigrateResult[] = [];
  while (results.length < maxCalls) {
    beforeCall?.(results.length + 1);
    const callCtx =
      deadline === undefined
        ? ctx
        : { ...ctx, settings: { ...ctx.settings, migrateBudgetMs: Math.max(1, Math.min(ctx.settings.migrateBudgetMs, deadline - Date.now())) } };
    const result = await migrate(callCtx, catalog, target, migrateOptions);
    results.push(result);
    await afterCall?.(result);
    if (until(result) || result.finished || (deadline !== undefined && Date.now() >= deadline)) return results;
  }
  throw new Error(`migrate did not finish in ${maxCalls} calls`);
}
