/**
 * What one poll of the drain gate found, as data: the gate decides on it, the drain timeout carries it, and the
 * summary people read is a rendering of it (drain-summary.ts). Kept in the execution's data (`$.drain.report`), so
 * the task contract parses it with these schemas; the types are derived from them.
 */
import * as z from 'zod/mini';
import { serviceLabel } from './ecs-names.ts';

const count = z.number().check(z.int(), z.minimum(0));

export const ecsDrainBlockerSchema = z.object({
  cluster: z.string(),
  service: z.string(),
  /** `old-tasks`: live tasks run `taskDefinition`, an old one. `rollout-in-progress`: the new release's rollout
   * (of `taskDefinition`) has not completed yet; it may still fail and roll back to the old release. */
  reason: z.enum(['old-tasks', 'rollout-in-progress']),
  /** The task definition as ECS reports it (full ARN); `unknown` for live tasks DescribeTasks could not describe. */
  taskDefinition: z.string(),
  /** Live tasks running `taskDefinition`; 0 for `rollout-in-progress` (the rollout blocks, not a task). */
  tasks: count,
  /** ISO time of the oldest such task's startedAt (or createdAt); for a rollout, the deployment's createdAt. */
  since: z.optional(z.string()),
});
export type EcsDrainBlocker = z.infer<typeof ecsDrainBlockerSchema>;

/** One ECS service as the poll found it. */
export const ecsServiceDrainSchema = z.object({
  cluster: z.string(),
  service: z.string(),
  /** The task definition treated as the new release (full ARN as ECS reports it). */
  newTaskDefinition: z.string(),
  /** Live tasks running the new release. */
  newTasks: count,
});
export type EcsServiceDrain = z.infer<typeof ecsServiceDrainSchema>;

export const ecsDrainReportSchema = z.object({
  drained: z.boolean(),
  source: z.literal('ecs'),
  checkedAt: z.string(),
  /** Every service checked, in the order given. */
  services: z.array(ecsServiceDrainSchema),
  /** What still blocks, per service in the order of `services`: its rollout first, then old tasks, oldest first. */
  blockers: z.array(ecsDrainBlockerSchema),
});
export type EcsDrainReport = z.infer<typeof ecsDrainReportSchema>;

export const sessionDrainBlockerSchema = z.object({
  /** `''` for the application role's unnamed sessions. */
  applicationName: z.string(),
  role: z.string(),
  sessions: count,
  /** The oldest visible session's start; undefined when PostgreSQL hides every one from the upgrade's role. */
  since: z.optional(z.string()),
  /** Some of these sessions' start times are hidden from the upgrade's role. */
  startTimesHidden: z.boolean(),
});
export type SessionDrainBlocker = z.infer<typeof sessionDrainBlockerSchema>;

export const sessionDrainReportSchema = z.object({
  drained: z.boolean(),
  source: z.literal('database-sessions'),
  checkedAt: z.string(),
  /** The LIKE pattern over `application_name` that selected the old release's sessions. */
  applicationNamePattern: z.string(),
  /** The application's role whose unnamed sessions counted as the old release's, when given. */
  applicationRole: z.optional(z.string()),
  blockers: z.array(sessionDrainBlockerSchema),
  /**
   * Some blocking sessions' start times are hidden: without `pg_read_all_stats` (or membership of the session's
   * role), pg_stat_activity shows another role's session with its database, role and application_name but a NULL
   * backend_start (and state, query, backend_type).
   */
  startTimesHidden: z.boolean(),
});
export type SessionDrainReport = z.infer<typeof sessionDrainReportSchema>;

export const drainReportSchema = z.discriminatedUnion('source', [ecsDrainReportSchema, sessionDrainReportSchema]);
export type DrainReport = z.infer<typeof drainReportSchema>;

/** Per service (`cluster/service`, short names) the task definition the poll treated as new, to pin for the next. */
export function pinnedTaskDefinitions(report: EcsDrainReport): Record<string, string> {
  return Object.fromEntries(report.services.map((s) => [serviceLabel(s.cluster, s.service), s.newTaskDefinition]));
}
