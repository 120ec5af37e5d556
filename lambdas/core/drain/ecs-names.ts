/** How the drain gate names ECS services and task definitions, in reports, report keys and comparisons. */

export interface EcsServiceRef {
  readonly cluster: string;
  readonly service: string;
  /**
   * The new release's task definition: full ARN or family:revision. When absent, the service's PRIMARY
   * deployment, once its rolloutState is COMPLETED.
   *
   * Without it, whatever the PRIMARY deployment runs counts as new: that is only right once the new release has
   * been deployed (before that, or after a completed rollback, the PRIMARY deployment runs the old release). The
   * caller should pin the report's new task definitions (`pinnedTaskDefinitions`) from its first poll and pass them
   * on the next polls.
   */
  readonly newTaskDefinition?: string;
  /**
   * The task definitions the old release ran, recorded when the upgrade was planned (`readOldTaskDefinitions`).
   * A PRIMARY deployment (or the pinned new release) running one of them means the service runs the old release
   * again: a rollback, which fails the drain instead of passing as drained.
   */
  readonly oldTaskDefinitions?: readonly string[];
}

/** The last part of an ARN (`arn:aws:ecs:r:a:service/cluster/name` -> `name`); a plain name is returned as is. */
export function shortName(nameOrArn: string): string {
  return nameOrArn.startsWith('arn:') ? nameOrArn.slice(nameOrArn.lastIndexOf('/') + 1) : nameOrArn;
}

/** How a service is named in summaries and report keys: `cluster/service`, short names. */
export function serviceLabel(cluster: string, service: string): string {
  return `${shortName(cluster)}/${shortName(service)}`;
}

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
export function displayTaskDefinition(taskDefinition: string): string {
  return taskDefinitionKey(taskDefinition) ?? taskDefinition;
}

export function sameTaskDefinition(a: string | undefined, b: string): boolean {
  if (a === undefined) return false;
  const ka = taskDefinitionKey(a);
  return ka !== undefined && ka === taskDefinitionKey(b);
}
