import type { ECSClient } from '@aws-sdk/client-ecs';
import type { DrainSourceConfig } from '../drain/drain-gate.ts';
import { serviceLabel } from '../drain/ecs-names.ts';
import { readOldTaskDefinitions } from '../drain/ecs-release.ts';
import type { OldReleaseTaskResult, UpgradePlan } from './task-contract.ts';

/**
 * "Record old release", between "Start upgrade" and expand: per ECS service of the drain source, the task definitions the
 * old release runs now, while it is certainly the old one (readOldTaskDefinitions), less the new release's when the
 * execution input names it. The state machine writes the answer into the plan's `oldTaskDefinitions`, so the drain
 * gate fails when a service runs one of them again. A plan that asks for no record keeps its own (carried or empty).
 * Throws DrainFailedError for a service or cluster that does not exist, as a drain poll would.
 */
export async function recordOldRelease(ecs: () => ECSClient, source: DrainSourceConfig, plan: UpgradePlan): Promise<OldReleaseTaskResult> {
  if (!plan.recordOldRelease || source.kind !== 'ecs') return plan.oldTaskDefinitions;
  const requested = plan.newTaskDefinitions;
  return readOldTaskDefinitions(
    ecs(),
    source.services.map((s) => ({
      cluster: s.cluster,
      service: s.service,
      newTaskDefinition: requested[s.service] ?? requested[serviceLabel(s.cluster, s.service)],
    })),
  );
}
