/**
 * Which task definition is a service's new release, and whether its rollout still blocks the drain gate. ECS API
 * facts this relies on (Amazon ECS API reference, @aws-sdk/client-ecs 3.1143 models):
 * - A service's `status` is ACTIVE, DRAINING or INACTIVE (DRAINING/INACTIVE: deleted).
 * - `services[].deployments[]` has `status` PRIMARY (most recent), ACTIVE (still has running tasks, being replaced)
 *   or INACTIVE (completely replaced), `taskDefinition`, `runningCount`, `pendingCount`, `createdAt` and
 *   `rolloutState` IN_PROGRESS / COMPLETED / FAILED. rolloutState is only returned for rolling-update (ECS
 *   controller) services that are not behind a Classic Load Balancer. CODE_DEPLOY / EXTERNAL services use
 *   `taskSets[]` instead.
 */
import type { Deployment, ECSClient, Service } from '@aws-sdk/client-ecs';
import { InputError } from '../errors.ts';
import { DrainFailedError, type DrainFailureReason } from './drain-errors.ts';
import { displayTaskDefinition, sameTaskDefinition, serviceLabel, taskDefinitionKey, type EcsServiceRef } from './ecs-names.ts';
import { describeServices } from './ecs-reads.ts';

/** What was decided about one service before its tasks are looked at. */
export interface ReleasePlan {
  /** The new release's task definition, as ECS names it in the deployment (full ARN). */
  readonly newTaskDefinition: string;
  /** The rollout of the new release has not completed: it may still fail and bring the old release back. */
  readonly rolloutInProgress: boolean;
  /** When that rollout started (the deployment's createdAt). */
  readonly rolloutSince: Date | undefined;
}

/** Deployment statuses that still run (or are about to run) tasks; INACTIVE ones were completely replaced. */
const RUNNING_DEPLOYMENT_STATUSES: ReadonlySet<string> = new Set(['PRIMARY', 'ACTIVE']);

function runningDeployments(service: Service): Deployment[] {
  return (service.deployments ?? []).filter((d) => RUNNING_DEPLOYMENT_STATUSES.has(d.status ?? ''));
}

/**
 * Whether the deployment has not finished rolling out. Without rolloutState (a Classic Load Balancer, or an old
 * service), it counts as finished once it is the only deployment still running tasks.
 */
function rolloutInProgress(deployment: Deployment, service: Service): boolean {
  if (deployment.rolloutState !== undefined) return deployment.rolloutState === 'IN_PROGRESS';
  return runningDeployments(service).length > 1;
}

/**
 * Decides the new task definition of a service and whether its rollout still blocks; throws DrainFailedError when
 * it never will, including when the release treated as new is one the old release ran (recorded at plan time), and
 * InputError for a malformed newTaskDefinition.
 */
export function planRelease(ref: EcsServiceRef, service: Service): ReleasePlan {
  const plan = planNewRelease(ref, service);
  const old = ref.oldTaskDefinitions?.find((o) => sameTaskDefinition(o, plan.newTaskDefinition));
  if (old !== undefined) {
    const deployments = runningDeployments(service).map(
      (d) => `${d.status} ${displayTaskDefinition(d.taskDefinition ?? 'unknown')}${d.rolloutState ? ` ${d.rolloutState}` : ''}`,
    );
    throw new DrainFailedError(
      ref.cluster,
      ref.service,
      'rolled-back',
      `the service runs ${displayTaskDefinition(old)} again, which the old release ran when this upgrade was planned ` +
        `(deployments: ${deployments.join(', ') || 'none'}): the new release was rolled back, or never deployed. ` +
        `If ${displayTaskDefinition(old)} is in fact the new release (deployed before this execution started), name it in the input's newTaskDefinitions.`,
    );
  }
  return plan;
}

function planNewRelease(ref: EcsServiceRef, service: Service): ReleasePlan {
  const fail = (reason: DrainFailureReason, detail: string) => new DrainFailedError(ref.cluster, ref.service, reason, detail);

  if (service.status !== 'ACTIVE') {
    throw fail('inactive', `the service's status is ${service.status ?? 'unknown'}, not ACTIVE (it was deleted)`);
  }
  const running = runningDeployments(service);

  if (ref.newTaskDefinition === undefined) {
    const primary = running.find((d) => d.status === 'PRIMARY');
    if (!primary?.taskDefinition) {
      throw fail(
        'no-primary-deployment',
        'the service has no PRIMARY deployment to take the new release from (a CODE_DEPLOY or EXTERNAL service uses task sets); give newTaskDefinition',
      );
    }
    // Which release is "new" is only known from the PRIMARY deployment: a FAILED deployment anywhere means the
    // circuit breaker tripped, and the PRIMARY one may be the rollback to the old release.
    const failed = running.find((d) => d.rolloutState === 'FAILED');
    if (failed) {
      throw fail(
        'rollout-failed',
        `the ${failed.status} deployment of ${displayTaskDefinition(failed.taskDefinition ?? 'unknown')} failed` +
          (failed.rolloutStateReason ? `: ${failed.rolloutStateReason}` : ''),
      );
    }
    const inProgress = rolloutInProgress(primary, service);
    return {
      newTaskDefinition: primary.taskDefinition,
      rolloutInProgress: inProgress,
      rolloutSince: inProgress ? primary.createdAt : undefined,
    };
  }

  const wanted = ref.newTaskDefinition;
  if (taskDefinitionKey(wanted) === undefined) {
    throw new InputError(
      `newTaskDefinition of ECS service ${serviceLabel(ref.cluster, ref.service)} must be family:revision or a task definition ARN, got "${wanted}".`,
    );
  }
  const deployments = running.filter((d) => sameTaskDefinition(d.taskDefinition, wanted));
  const failed = deployments.find((d) => d.rolloutState === 'FAILED');
  if (failed) {
    throw fail(
      'rollout-failed',
      `the ${failed.status} deployment of the new release ${displayTaskDefinition(wanted)} failed` +
        (failed.rolloutStateReason ? `: ${failed.rolloutStateReason}` : ''),
    );
  }
  const deployment = deployments.find((d) => d.status === 'PRIMARY') ?? deployments[0];
  if (!deployment) {
    // A CODE_DEPLOY / EXTERNAL service runs its release in task sets, not deployments.
    const taskSet = (service.taskSets ?? []).find(
      (t) => t.status !== 'DRAINING' && sameTaskDefinition(t.taskDefinition, wanted),
    );
    if (taskSet?.taskDefinition) {
      const inProgress = taskSet.stabilityStatus !== 'STEADY_STATE';
      return {
        newTaskDefinition: taskSet.taskDefinition,
        rolloutInProgress: inProgress,
        rolloutSince: inProgress ? taskSet.createdAt : undefined,
      };
    }
    const current = running.map((d) => `${d.status} ${displayTaskDefinition(d.taskDefinition ?? 'unknown')}`);
    throw fail(
      'rolled-back',
      `no deployment runs the new release ${displayTaskDefinition(wanted)} (rolled back, or not deployed yet); ` +
        `deployments: ${current.length > 0 ? current.join(', ') : 'none'}`,
    );
  }
  const inProgress = rolloutInProgress(deployment, service);
  return {
    newTaskDefinition: deployment.taskDefinition ?? wanted,
    rolloutInProgress: inProgress,
    rolloutSince: inProgress ? deployment.createdAt : undefined,
  };
}

/**
 * What the old release runs, read when the upgrade is planned (before expand, so before the new release can be
 * deployed): per service (`cluster/service`, short names), the task definitions of its PRIMARY and ACTIVE
 * deployments and of its task sets that are not DRAINING, less the new release's when `newTaskDefinition` names it.
 * Throws DrainFailedError for a service or cluster that does not exist, as a poll would.
 */
export async function readOldTaskDefinitions(
  ecs: ECSClient,
  services: readonly EcsServiceRef[],
): Promise<Record<string, string[]>> {
  const described = await describeServices(ecs, services);
  const old: Record<string, string[]> = {};
  for (const ref of services) {
    const service = described.get(ref)!;
    const running = [
      ...runningDeployments(service).map((d) => d.taskDefinition),
      ...(service.taskSets ?? []).filter((t) => t.status !== 'DRAINING').map((t) => t.taskDefinition),
    ];
    const definitions = new Set<string>();
    for (const definition of running) {
      if (definition === undefined || sameTaskDefinition(ref.newTaskDefinition, definition)) continue;
      definitions.add(definition);
    }
    old[serviceLabel(ref.cluster, ref.service)] = [...definitions];
  }
  return old;
}
