/**
 * The ECS source of the drain gate between migrate and contract: contract drops what the old application release
 * still uses, so it may only run once no ECS task of the old release runs any more. One call of `checkEcsDrain` is
 * one poll; the waiting (a Step Functions Wait loop) is the caller's. Knows nothing of Lambda or Step Functions.
 *
 * ECS API facts this relies on (Amazon ECS API reference, @aws-sdk/client-ecs 3.1143 models):
 * - DescribeServices takes one `cluster` and up to 10 `services`; it answers `services[]` and `failures[]`
 *   (`arn`, `reason`, `detail`), reason `MISSING` for a service that does not exist. A service's `status` is
 *   ACTIVE, DRAINING or INACTIVE (DRAINING/INACTIVE: deleted). A cluster that does not exist is an error
 *   (ClusterNotFoundException), not a failure entry.
 * - `services[].deployments[]` has `status` PRIMARY (most recent), ACTIVE (still has running tasks, being replaced)
 *   or INACTIVE (completely replaced), `taskDefinition`, `runningCount`, `pendingCount`, `createdAt` and
 *   `rolloutState` IN_PROGRESS / COMPLETED / FAILED. rolloutState is only returned for rolling-update (ECS
 *   controller) services that are not behind a Classic Load Balancer. CODE_DEPLOY / EXTERNAL services use
 *   `taskSets[]` instead.
 * - ListTasks filters on the *desired* status (default RUNNING); a task being stopped has desiredStatus STOPPED
 *   while its lastStatus is still RUNNING / DEACTIVATING / STOPPING, so both RUNNING and STOPPED are listed.
 *   Pages of up to 100 ARNs, continued with `nextToken`. Recently stopped tasks are listed for at least an hour.
 * - DescribeTasks takes up to 100 task IDs or ARNs and answers `tasks[]` (`taskArn`, `taskDefinitionArn`,
 *   `lastStatus`, `desiredStatus`, `startedAt`, `createdAt`) and `failures[]`.
 * - Task lifecycle: PROVISIONING, PENDING, ACTIVATING, RUNNING, DEACTIVATING, STOPPING, DEPROVISIONING, STOPPED.
 */
import {
  DescribeServicesCommand,
  DescribeTasksCommand,
  ListTasksCommand,
  type Deployment,
  type DesiredStatus,
  type ECSClient,
  type Service,
  type Task,
} from '@aws-sdk/client-ecs';
import { InputError } from '../errors.ts';
import { DrainFailedError, serviceLabel, shortName } from './drain-errors.ts';

export interface EcsServiceRef {
  readonly cluster: string;
  readonly service: string;
  /**
   * The new release's task definition: full ARN or family:revision. When absent, the service's PRIMARY
   * deployment, once its rolloutState is COMPLETED.
   *
   * Without it, whatever the PRIMARY deployment runs counts as new: that is only right once the new release has
   * been deployed (before that, or after a completed rollback, the PRIMARY deployment runs the old release). The
   * caller should pin `DrainReport.newTaskDefinitions` from its first poll and pass it on the next polls.
   */
  readonly newTaskDefinition?: string;
  /**
   * The task definitions the old release ran, recorded when the upgrade was planned (`readOldTaskDefinitions`).
   * A PRIMARY deployment (or the pinned new release) running one of them means the service runs the old release
   * again: a rollback, which fails the drain instead of passing as drained.
   */
  readonly oldTaskDefinitions?: readonly string[];
}

export interface DrainBlocker {
  readonly cluster: string;
  readonly service: string;
  /** `old-tasks`: live tasks run `taskDefinition`, an old one. `rollout-in-progress`: the new release's rollout
   * (of `taskDefinition`) has not completed yet; it may still fail and roll back to the old release. */
  readonly reason: 'old-tasks' | 'rollout-in-progress';
  /** The task definition as ECS reports it (full ARN); `unknown` for live tasks DescribeTasks could not describe. */
  readonly taskDefinition: string;
  /** Live tasks running `taskDefinition`; 0 for `rollout-in-progress` (the rollout blocks, not a task). */
  readonly tasks: number;
  /** ISO time of the oldest such task's startedAt (or createdAt); for a rollout, the deployment's createdAt. */
  readonly since: string | undefined;
}

export interface DrainReport {
  readonly drained: boolean;
  readonly source: 'ecs';
  readonly checkedAt: string;
  readonly blockers: readonly DrainBlocker[];
  /** one human line per service, e.g. "orders/api: 3 tasks still run orders-api:41 (since 2026-11-25T03:10:00Z); new release orders-api:42" */
  readonly summary: string;
  /** per service (`cluster/service`, short names) the task definition treated as new (full ARN as ECS reports it) */
  readonly newTaskDefinitions: Readonly<Record<string, string>>;
}

/** DescribeServices: "You may specify up to 10 services to describe in a single operation." */
const DESCRIBE_SERVICES_MAX = 10;
/** DescribeTasks: "A list of up to 100 task IDs or full ARN entries." */
const DESCRIBE_TASKS_MAX = 100;
/** ListTasks filters on desired status: RUNNING alone misses tasks that are being stopped but still serve. */
const LISTED_DESIRED_STATUSES: readonly DesiredStatus[] = ['RUNNING', 'STOPPED'];

/**
 * lastStatus values of a task that no longer runs application code. Every other value counts as live, including
 * PROVISIONING / PENDING / ACTIVATING (about to run the old code) and DEACTIVATING / STOPPING (still serving: load
 * balancer deregistration and the container stop happen in these states), and a missing lastStatus.
 * DEPROVISIONING is not live: per the task lifecycle reference, it is "after the task has stopped but before the
 * task transitions to the STOPPED state" (e.g. its network interface is detached), so its containers have exited
 * and it can no longer touch the database.
 */
const NOT_LIVE_STATUSES: ReadonlySet<string> = new Set(['DEPROVISIONING', 'STOPPED']);

/** Deployment statuses that still run (or are about to run) tasks; INACTIVE ones were completely replaced. */
const RUNNING_DEPLOYMENT_STATUSES: ReadonlySet<string> = new Set(['PRIMARY', 'ACTIVE']);

const TASK_DEFINITION_ARN = /^arn:[^:]+:ecs:[^:]*:[^:]*:task-definition\/(.+)$/;
const FAMILY_REVISION = /^[A-Za-z0-9_-]{1,255}:[1-9][0-9]*$/;

/**
 * The comparable form of a task definition: `family:revision`. A full ARN
 * (`arn:aws:ecs:region:account:task-definition/family:revision`) and `family:revision` name the same thing.
 * Answers undefined for anything else (a bare family, which names no single revision).
 */
export function taskDefinitionKey(taskDefinition: string): string | undefined {
  const key = TASK_DEFINITION_ARN.exec(taskDefinition)?.[1] ?? taskDefinition;
  return FAMILY_REVISION.test(key) ? key : undefined;
}

/** `family:revision` for display, the input unchanged when it is not a task definition. */
function displayTaskDefinition(taskDefinition: string): string {
  return taskDefinitionKey(taskDefinition) ?? taskDefinition;
}

function sameTaskDefinition(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const ka = taskDefinitionKey(a);
  return ka !== undefined && ka === taskDefinitionKey(b);
}

/** ISO time without zero milliseconds: 2026-11-25T03:10:00Z. */
function isoTime(date: Date): string {
  return date.toISOString().replace(/\.000Z$/, 'Z');
}

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

/** What was decided about one service before its tasks are looked at. */
interface ServicePlan {
  readonly ref: EcsServiceRef;
  readonly label: string;
  /** The new release's task definition, as ECS names it in the deployment (full ARN). */
  readonly newTaskDefinition: string;
  /** The rollout of the new release has not completed: it may still fail and bring the old release back. */
  readonly rolloutInProgress: boolean;
  /** When that rollout started (the deployment's createdAt). */
  readonly rolloutSince: Date | undefined;
}

/** One DescribeServices pass over every service, cluster by cluster, at most 10 a call. */
async function describeServices(
  ecs: ECSClient,
  refs: readonly EcsServiceRef[],
): Promise<Map<EcsServiceRef, Service>> {
  const byCluster = new Map<string, EcsServiceRef[]>();
  for (const ref of refs) {
    const list = byCluster.get(ref.cluster) ?? [];
    list.push(ref);
    byCluster.set(ref.cluster, list);
  }
  const found = new Map<EcsServiceRef, Service>();
  for (const [cluster, clusterRefs] of byCluster) {
    for (const part of chunk(clusterRefs, DESCRIBE_SERVICES_MAX)) {
      let answer;
      try {
        answer = await ecs.send(new DescribeServicesCommand({ cluster, services: part.map((r) => r.service) }));
      } catch (error) {
        if (errorName(error) === 'ClusterNotFoundException') {
          const first = part[0]!;
          throw new DrainFailedError(cluster, first.service, 'missing', `cluster ${cluster} does not exist`, {
            cause: error,
          });
        }
        throw error;
      }
      for (const ref of part) {
        const name = shortName(ref.service);
        const service = answer.services?.find((s) => s.serviceName === name || s.serviceArn === ref.service);
        if (service) {
          found.set(ref, service);
          continue;
        }
        const failure = answer.failures?.find((f) => f.arn === ref.service || shortName(f.arn ?? '') === name);
        if (failure && failure.reason !== undefined && failure.reason !== 'MISSING') {
          throw new DrainFailedError(
            ref.cluster,
            ref.service,
            'describe-failed',
            `DescribeServices failed: ${failure.reason}${failure.detail ? ` (${failure.detail})` : ''}`,
          );
        }
        throw new DrainFailedError(ref.cluster, ref.service, 'missing', 'the service does not exist (MISSING)');
      }
    }
  }
  return found;
}

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
 * Decides the new task definition of a service and whether its rollout still blocks; throws when it never will,
 * including when the release treated as new is one the old release ran (recorded at plan time).
 */
function planService(ref: EcsServiceRef, service: Service): ServicePlan {
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

function planNewRelease(ref: EcsServiceRef, service: Service): ServicePlan {
  const label = serviceLabel(ref.cluster, ref.service);
  const fail = (reason: ConstructorParameters<typeof DrainFailedError>[2], detail: string) =>
    new DrainFailedError(ref.cluster, ref.service, reason, detail);

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
      ref,
      label,
      newTaskDefinition: primary.taskDefinition,
      rolloutInProgress: inProgress,
      rolloutSince: inProgress ? primary.createdAt : undefined,
    };
  }

  const wanted = ref.newTaskDefinition;
  if (taskDefinitionKey(wanted) === undefined) {
    throw new InputError(
      `newTaskDefinition of ECS service ${label} must be family:revision or a task definition ARN, got "${wanted}".`,
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
        ref,
        label,
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
    ref,
    label,
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

/** Every task of the service whose desired status is RUNNING or STOPPED, every page. */
async function listServiceTasks(ecs: ECSClient, ref: EcsServiceRef): Promise<string[]> {
  const arns = new Set<string>();
  for (const desiredStatus of LISTED_DESIRED_STATUSES) {
    let nextToken: string | undefined;
    do {
      const page = await ecs.send(
        new ListTasksCommand({ cluster: ref.cluster, serviceName: shortName(ref.service), desiredStatus, nextToken }),
      );
      // A task whose desired status changes between the two listings shows up in both.
      for (const arn of page.taskArns ?? []) arns.add(arn);
      nextToken = page.nextToken;
    } while (nextToken);
  }
  return [...arns];
}

interface DescribedTasks {
  readonly tasks: Task[];
  /** Tasks DescribeTasks answered a failure for other than MISSING: they may be alive and old. */
  readonly undescribed: number;
}

async function describeTasks(ecs: ECSClient, cluster: string, arns: readonly string[]): Promise<DescribedTasks> {
  const tasks: Task[] = [];
  let undescribed = 0;
  for (const part of chunk(arns, DESCRIBE_TASKS_MAX)) {
    const answer = await ecs.send(new DescribeTasksCommand({ cluster, tasks: part }));
    tasks.push(...(answer.tasks ?? []));
    // MISSING: the task is gone, so it runs nothing.
    undescribed += (answer.failures ?? []).filter((f) => f.reason !== 'MISSING').length;
  }
  return { tasks, undescribed };
}

function isLive(task: Task): boolean {
  return !NOT_LIVE_STATUSES.has(task.lastStatus ?? '');
}

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}

/**
 * One poll of the drain gate over ECS services: drained when, in every service, every live task (running, starting,
 * or still stopping) runs the new release's task definition and the new release's rollout has completed.
 *
 * Throws DrainFailedError when a service can never drain on its own (missing or deleted service, failed or
 * rolled-back deployment), InputError for a malformed newTaskDefinition, and lets ECS client errors (throttling,
 * access denied) through unchanged. Only tasks that belong to the services are looked at (ListTasks serviceName):
 * tasks started by hand with RunTask are not.
 */
export async function checkEcsDrain(
  ecs: ECSClient,
  services: readonly EcsServiceRef[],
  now: Date = new Date(),
): Promise<DrainReport> {
  const refs: EcsServiceRef[] = [];
  const seen = new Set<string>();
  for (const ref of services) {
    if (!ref.cluster || !ref.service) {
      throw new InputError('Every ECS service to drain needs a cluster and a service name.');
    }
    const key = `${ref.cluster}\u0000${ref.service}`;
    if (!seen.has(key)) {
      seen.add(key);
      refs.push(ref);
    }
  }

  const described = await describeServices(ecs, refs);
  // Every service is planned before any task is listed: a failed service fails the poll without further calls.
  const plans = refs.map((ref) => planService(ref, described.get(ref)!));

  const blockers: DrainBlocker[] = [];
  const lines: string[] = [];
  const newTaskDefinitions: Record<string, string> = {};

  for (const plan of plans) {
    const { ref, label } = plan;
    newTaskDefinitions[label] = plan.newTaskDefinition;
    const { tasks, undescribed } = await describeTasks(ecs, ref.cluster, await listServiceTasks(ecs, ref));

    const oldByDefinition = new Map<string, { tasks: number; since: Date | undefined }>();
    let newLive = 0;
    for (const task of tasks.filter(isLive)) {
      if (sameTaskDefinition(task.taskDefinitionArn, plan.newTaskDefinition)) {
        newLive += 1;
        continue;
      }
      const definition = task.taskDefinitionArn ?? 'unknown';
      const group = oldByDefinition.get(definition) ?? { tasks: 0, since: undefined };
      const started = task.startedAt ?? task.createdAt;
      group.tasks += 1;
      if (started && (group.since === undefined || started < group.since)) group.since = started;
      oldByDefinition.set(definition, group);
    }
    if (undescribed > 0) {
      const group = oldByDefinition.get('unknown') ?? { tasks: 0, since: undefined };
      group.tasks += undescribed;
      oldByDefinition.set('unknown', group);
    }

    const parts: string[] = [];
    const newName = displayTaskDefinition(plan.newTaskDefinition);
    if (plan.rolloutInProgress) {
      const since = plan.rolloutSince ? isoTime(plan.rolloutSince) : undefined;
      blockers.push({
        cluster: ref.cluster,
        service: ref.service,
        reason: 'rollout-in-progress',
        taskDefinition: plan.newTaskDefinition,
        tasks: 0,
        since,
      });
      parts.push(`rollout in progress${since ? ` (since ${since})` : ''}`);
    }
    const groups = [...oldByDefinition].sort(
      ([, a], [, b]) => (a.since?.getTime() ?? Infinity) - (b.since?.getTime() ?? Infinity),
    );
    for (const [definition, group] of groups) {
      const since = group.since ? isoTime(group.since) : undefined;
      blockers.push({
        cluster: ref.cluster,
        service: ref.service,
        reason: 'old-tasks',
        taskDefinition: definition,
        tasks: group.tasks,
        since,
      });
      parts.push(
        `${plural(group.tasks, 'task still runs', 'tasks still run')} ${displayTaskDefinition(definition)}` +
          (since ? ` (since ${since})` : ''),
      );
    }
    lines.push(
      parts.length > 0
        ? `${label}: ${parts.join(', ')}; new release ${newName}`
        : `${label}: drained; ${plural(newLive, 'task runs', 'tasks run')} new release ${newName}`,
    );
  }

  return {
    drained: blockers.length === 0,
    source: 'ecs',
    checkedAt: isoTime(now),
    blockers,
    summary: lines.length > 0 ? lines.join('\n') : 'no ECS services to check',
    newTaskDefinitions,
  };
}
