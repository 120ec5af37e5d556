/**
 * The ECS source of the drain gate between migrate and contract: contract drops what the old application release
 * still uses, so it may only run once no ECS task of the old release runs any more. One call of `checkEcsDrain` is
 * one poll; the waiting (a Step Functions Wait loop) is the caller's. Knows nothing of Lambda or Step Functions.
 */
import type { ECSClient } from '@aws-sdk/client-ecs';
import { InputError } from '../errors.ts';
import type { EcsDrainBlocker, EcsDrainReport, EcsServiceDrain } from './drain-report.ts';
import { sameTaskDefinition, type EcsServiceRef } from './ecs-names.ts';
import { describeLiveTasks, describeServices, listServiceTasks } from './ecs-reads.ts';
import { planRelease } from './ecs-release.ts';

/** ISO time without zero milliseconds: 2026-11-25T03:10:00Z. */
function isoTime(date: Date): string {
  return date.toISOString().replace(/\.000Z$/, 'Z');
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
): Promise<EcsDrainReport> {
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
  const plans = refs.map((ref) => ({ ref, ...planRelease(ref, described.get(ref)!) }));

  const checked: EcsServiceDrain[] = [];
  const blockers: EcsDrainBlocker[] = [];
  for (const plan of plans) {
    const { cluster, service } = plan.ref;
    const { live, undescribed } = await describeLiveTasks(ecs, cluster, await listServiceTasks(ecs, plan.ref));

    const oldByDefinition = new Map<string, { tasks: number; since: Date | undefined }>();
    let newTasks = 0;
    for (const task of live) {
      if (sameTaskDefinition(task.taskDefinitionArn, plan.newTaskDefinition)) {
        newTasks += 1;
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

    checked.push({ cluster, service, newTaskDefinition: plan.newTaskDefinition, newTasks });
    if (plan.rolloutInProgress) {
      const since = plan.rolloutSince ? isoTime(plan.rolloutSince) : undefined;
      blockers.push({ cluster, service, reason: 'rollout-in-progress', taskDefinition: plan.newTaskDefinition, tasks: 0, since });
    }
    const groups = [...oldByDefinition].sort(
      ([, a], [, b]) => (a.since?.getTime() ?? Infinity) - (b.since?.getTime() ?? Infinity),
    );
    for (const [definition, group] of groups) {
      const since = group.since ? isoTime(group.since) : undefined;
      blockers.push({ cluster, service, reason: 'old-tasks', taskDefinition: definition, tasks: group.tasks, since });
    }
  }

  return { drained: blockers.length === 0, source: 'ecs', checkedAt: isoTime(now), services: checked, blockers };
}
