/**
 * The states an operator sees in the Step Functions console, keyed by the short name the workflow code uses. The
 * CDK definition and the failure report both read them from here, so the Cause of a failed execution names the
 * state exactly as the console shows it.
 */
export const STATE_NAMES = {
  plan: 'Start upgrade',
  expand: 'Expand schema',
  migrate: 'Migrate data (one batch run)',
  drain: 'Check old release drained',
  contract: 'Contract schema',
  finish: 'Release lease and summarise',
} as const;

export type WorkflowTask = keyof typeof STATE_NAMES;

export const WORKFLOW_TASKS = Object.keys(STATE_NAMES) as WorkflowTask[];

/** The states that are not Lambda tasks: choices, the drain wait, and the two ends. */
export const CONTROL_STATE_NAMES = {
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
