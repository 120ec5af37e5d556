/**
 * The workflow's entry for code that drives or reads executions from outside the Lambda tasks (the CLI, the tests):
 * the task contract, the state names, the execution input, and the start and finish of a run as the first and last
 * states do them. It stays apart from lambdas/core/index.ts, which knows nothing of Step Functions. The Lambda
 * handlers import these modules directly, like the rest of the engine, so that each bundle holds only its task.
 */
export * from './task-contract.ts';
export * from './state-names.ts';
export { executionInputSchema, parseExecutionInput, type ExecutionInput } from './execution-input.ts';
export { startUpgrade, type StartDrainDependencies } from './upgrade-plan.ts';
export { finishUpgrade } from './run-summary.ts';
export { reportFailure } from './failure-report.ts';
