/**
 * The ECS reads of the drain gate, paged as the API requires. ECS API facts these rely on (Amazon ECS API
 * reference, @aws-sdk/client-ecs 3.1143 models):
 * - DescribeServices takes one `cluster` and up to 10 `services`; it answers `services[]` and `failures[]`
 *   (`arn`, `reason`, `detail`), reason `MISSING` for a service that does not exist. A cluster that does not exist
 *   is an error (ClusterNotFoundException), not a failure entry.
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
  type DesiredStatus,
  type ECSClient,
  type Service,
  type Task,
} from '@aws-sdk/client-ecs';
import { DrainFailedError } from './drain-errors.ts';
import { shortName, type EcsServiceRef } from './ecs-names.ts';

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

function chunk<T>(items: readonly T[], size: number): T[][] {
  const chunks: T[][] = [];
  for (let i = 0; i < items.length; i += size) chunks.push(items.slice(i, i + size));
  return chunks;
}

function errorName(error: unknown): string | undefined {
  return error instanceof Error ? error.name : undefined;
}

/**
 * One DescribeServices pass over every service, cluster by cluster, at most 10 a call. Throws DrainFailedError for
 * a service or cluster that does not exist, or a service DescribeServices answers another failure for.
 */
export async function describeServices(
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

/** Every task of the service whose desired status is RUNNING or STOPPED, every page. */
export async function listServiceTasks(ecs: ECSClient, ref: EcsServiceRef): Promise<string[]> {
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

export interface DescribedTasks {
  /** The tasks that still run (or are about to run, or still stop) application code. */
  readonly live: Task[];
  /** Tasks DescribeTasks answered a failure for other than MISSING: they may be alive and old. */
  readonly undescribed: number;
}

export async function describeLiveTasks(ecs: ECSClient, cluster: string, arns: readonly string[]): Promise<DescribedTasks> {
  const live: Task[] = [];
  let undescribed = 0;
  for (const part of chunk(arns, DESCRIBE_TASKS_MAX)) {
    const answer = await ecs.send(new DescribeTasksCommand({ cluster, tasks: part }));
    live.push(...(answer.tasks ?? []).filter((task) => !NOT_LIVE_STATUSES.has(task.lastStatus ?? '')));
    // MISSING: the task is gone, so it runs nothing.
    undescribed += (answer.failures ?? []).filter((f) => f.reason !== 'MISSING').length;
  }
  return { live, undescribed };
}
