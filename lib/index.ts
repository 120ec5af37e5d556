// The package root (`import { ExpandMigrateContractUpgrade, DrainSource } from 'emc-upgrade'`): the construct, its
// props and documented defaults, the drain sources, and the errors it refuses bad props and migrations with at synth.
export {
  DEFAULT_DRAIN_POLL_INTERVAL,
  DEFAULT_DRAIN_TIMEOUT,
  DEFAULT_LOG_RETENTION,
  DEFAULT_MAX_MIGRATE_CALLS_PER_EXECUTION,
  ExpandMigrateContractUpgrade,
  MAX_DRAIN_POLLS,
  type BatchSettings,
  type ExpandMigrateContractUpgradeProps,
} from './expand-migrate-contract-upgrade.ts';
export { DrainSource, type EcsServiceTarget, type ResolvedEcsService } from './drain-source.ts';
export { ConstructPropsError } from './construct-props-error.ts';
export { UpgradeFunction, type UpgradeFunctionProps } from './upgrade-function.ts';
export { CatalogError, type CatalogProblem } from '../lambdas/core/errors.ts';
export type { WorkflowTask } from '../lambdas/core/workflow/state-names.ts';
