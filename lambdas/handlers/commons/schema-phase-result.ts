import type { StepRun } from '../../core/steps/run-steps.ts';
import type { SchemaPhaseTaskResult } from '../../core/workflow/task-contract.ts';

/** Expand's and contract's task result: the step ids applied, their total time, the versions around them. */
export function schemaPhaseResult(result: {
  phase: 'expand' | 'contract';
  stepsRun: readonly StepRun[];
  versionBefore: string;
  versionAfter: string;
}): SchemaPhaseTaskResult {
  return {
    phase: result.phase,
    stepsRun: result.stepsRun.map((s) => s.stepId),
    durationMs: result.stepsRun.reduce((n, s) => n + s.durationMs, 0),
    versionBefore: result.versionBefore,
    versionAfter: result.versionAfter,
  };
}
