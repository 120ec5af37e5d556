/**
 * What one poll of the drain gate found, as data: the gate decides on it, the drain timeout carries it, and the
 * summary people read is a rendering of it (drain-summary.ts). Kept in the execution's data (`$.drain.report`).
 */
import { serviceLabel } from './ecs-names.ts';

export interface EcsDrainBlocker {
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

/** One ECS service as the poll found it. */
export interface EcsServiceDrain {
  readonly cluster: string;
  readonly service: string;
  /** The task definition treated as the new release (full ARN as ECS reports it). */
  readonly newTaskDefinition: string;
  /** Live tasks running the new release. */
  readonly newTasks: number;
}

export interface EcsDrainReport {
  readonly drained: boolean;
  readonly source: 'ecs';
  readonly checkedAt: string;
  /** Every service checked, in the order given. */
  readonly services: readonly EcsServiceDrain[];
  /** What still blocks, per service in the order of `services`: its rollout first, then old tasks, oldest first. */
  readonly blockers: readonly EcsDrainBlocker[];
}

export interface SessionDrainBlocker {
  /** `''` for the application role's unnamed sessions. */
  readonly applicationName: string;
  readonly role: string;
  readonly sessions: number;
  /** The oldest visible session's start; undefined when PostgreSQL hides every one from the upgrade's role. */
  readonly since: string | undefined;
  /** Some of these sessions' start times are hidden from the upgrade's role. */
  readonly startTimesHidden: boolean;
}

export interface SessionDrainReport {
  readonly drained: boolean;
  readonly source: 'database-sessions';
  readonly checkedAt: string;
  /** The LIKE pattern over `application_name` that selected the old release's sessions. */
  readonly applicationNamePattern: string;
  /** The application's role whose unnamed sessions counted as the old release's, when given. */
  readonly applicationRole?: string;
  readonly blockers: readonly SessionDrainBlocker[];
  /**
   * Some blocking sessions' start times are hidden: without `pg_read_all_stats` (or membership of the session's
   * role), pg_stat_activity shows another role's session with its database, role and application_name but a NULL
   * backend_start (and state, query, backend_type).
   */
  readonly startTimesHidden: boolean;
}

export type DrainReport = EcsDrainReport | SessionDrainReport;

/** Per service (`cluster/service`, short names) the task definition the poll treated as new, to pin for the next. */
export function pinnedTaskDefinitions(report: EcsDrainReport): Record<string, string> {
  return Object.fromEntries(report.services.map((s) => [serviceLabel(s.cluster, s.service), s.newTaskDefinition]));
}
