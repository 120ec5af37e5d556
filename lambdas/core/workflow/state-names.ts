import type { TaskName } from './task-contract.ts';

/**
 * The states an operator sees in the Step Functions console, keyed by the short name the workflow code uses. The
 * CDK definition and the failure report both read them from here, so the Cause of a failed execution names the
 * state exactly as the console shows it.
 */
export const STATE_NAMES = {
  start: 'Start upgrade',
  expand: 'Expand schema',
  migrate: 'Migrate data (one batch run)',
  drain: 'Check old release drained',
  contract: 'Contract schema',
  finish: 'Release lease and summarise',
} as const;

export type WorkflowTask = keyof typeof STATE_NAMES;

export const WORKFLOW_TASKS = Object.keys(STATE_NAMES) as WorkflowTask[];

/**
 * The other states: choices, passes, the drain wait, the two ends, and the two Lambda tasks that are not phases
 * ("Record old release", which the drain function answers, and "Record failure").
 */
export const CONTROL_STATE_NAMES = {
  oldReleaseToRecord: 'Old release to record?',
  recordOldRelease: 'Record old release',
  stopAfterExpand: 'Stop after expand?',
  startMigrating: 'Start migrating',
  migrationFinished: 'Migration finished?',
  continueInNewExecution: 'Continue in a new execution',
  stopAfterMigrate: 'Stop after migrate?',
  startDrainWait: 'Start waiting for old release to drain',
  waitForDrain: 'Wait for old tasks to drain',
  drained: 'Old release drained?',
  recordFailure: 'Record failure',
  failed: 'Upgrade failed',
  complete: 'Upgrade complete',
} as const;

/** The state of every Lambda task of the contract, as the console shows it. */
export const TASK_STATE_NAMES = {
  ...STATE_NAMES,
  recordOldRelease: CONTROL_STATE_NAMES.recordOldRelease,
  recordFailure: CONTROL_STATE_NAMES.recordFailure,
} as const satisfies Record<TaskName, string>;
