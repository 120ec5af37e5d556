import { EmcError } from '../errors.ts';
import type { DrainReport } from './drain-report.ts';
import { blockingLines } from './drain-summary.ts';
import { serviceLabel } from './ecs-names.ts';

/**
 * Why a service can never drain on its own, so waiting longer is pointless:
 * - `missing`: DescribeServices answered a failure (reason `MISSING`) for it, or its cluster does not exist;
 * - `inactive`: the service's status is `DRAINING` or `INACTIVE` (it was deleted);
 * - `rollout-failed`: the deployment of the new release has rolloutState `FAILED` (the circuit breaker tripped);
 * - `rolled-back`: no PRIMARY or ACTIVE deployment runs the new task definition any more (or never did);
 * - `no-primary-deployment`: no new task definition was given and the service has no PRIMARY deployment to take it
 *   from (a CODE_DEPLOY or EXTERNAL service, which uses task sets).
 * - `describe-failed`: DescribeServices answered a failure other than `MISSING` for the service.
 */
export type DrainFailureReason =
  | 'missing'
  | 'inactive'
  | 'rollout-failed'
  | 'rolled-back'
  | 'no-primary-deployment'
  | 'describe-failed';

const NEXT_ACTION: Record<DrainFailureReason, string> = {
  missing:
    'Check the cluster and service names in the execution input (and the region), then start a new execution; contract was not run.',
  inactive:
    'The service was deleted: remove it from the execution input (or recreate it with the new release), then start a new execution; contract was not run.',
  'rollout-failed':
    'The new release failed to deploy: fix and redeploy it, then run the upgrade again; contract was not run, so the database still serves the old release.',
  'rolled-back':
    'The new release is not deployed (it was rolled back, or not deployed yet): deploy it, then run the upgrade again; contract was not run, so the database still serves the old release.',
  'no-primary-deployment':
    "Name the new release's task definition (newTaskDefinition) for this service in the execution input, then start a new execution; contract was not run.",
  'describe-failed':
    'Check the permissions and names used for ECS DescribeServices, then start a new execution; contract was not run.',
};

/** The old release can never drain from this service: contract must not run, and waiting longer will not help. */
export class DrainFailedError extends EmcError {
  override readonly name = 'DrainFailedError';
  readonly transient = false;
  readonly nextAction: string;
  constructor(
    readonly cluster: string,
    readonly service: string,
    readonly reason: DrainFailureReason,
    detail: string,
    options?: { cause?: unknown },
  ) {
    super(`Drain check failed for ECS service ${serviceLabel(cluster, service)} (${reason}): ${detail}`, options);
    this.nextAction = NEXT_ACTION[reason];
  }
}

/** The message of a drain timeout: what still blocked at the last check, one line per service. */
export function drainTimeoutMessage(report: DrainReport, timeoutSeconds: number): string {
  return (
    `The old release did not drain within ${timeoutSeconds} s (last checked ${report.checkedAt}); still blocking:\n` +
    blockingLines(report)
      .map((line) => `  - ${line}`)
      .join('\n')
  );
}

/** The drain gate's Wait loop ran out of time while old-release instances (ECS tasks, sessions) still ran. */
export class DrainTimeoutError extends EmcError {
  override readonly name = 'DrainTimeoutError';
  readonly transient = false;
  readonly nextAction =
    'Find out why the old-release instances listed still run (a stuck deployment, a service or fleet not yet updated), finish the deployment or stop them, then run the upgrade again; contract was not run, so the database still serves the old release.';
  constructor(
    readonly report: DrainReport,
    readonly timeoutSeconds: number,
  ) {
    super(drainTimeoutMessage(report, timeoutSeconds));
  }
}
