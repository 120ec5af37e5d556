/** The drain report rendered for people: the gate's summary (logs, `emc status`) and the drain timeout's message. */
import type { DrainReport, EcsDrainBlocker, EcsDrainReport, EcsServiceDrain, SessionDrainBlocker, SessionDrainReport } from './drain-report.ts';
import { displayTaskDefinition, serviceLabel } from './ecs-names.ts';

function plural(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}

/** e.g. "orders/api: 3 tasks still run orders-api:41 (since 2026-11-25T03:10:00Z); new release orders-api:42" */
function ecsServiceLine(service: EcsServiceDrain, blockers: readonly EcsDrainBlocker[]): string {
  const label = serviceLabel(service.cluster, service.service);
  const newName = displayTaskDefinition(service.newTaskDefinition);
  if (blockers.length === 0) return `${label}: drained; ${plural(service.newTasks, 'task runs', 'tasks run')} new release ${newName}`;
  const parts = blockers.map((b) => {
    const since = b.since ? ` (since ${b.since})` : '';
    return b.reason === 'rollout-in-progress'
      ? `rollout in progress${since}`
      : `${plural(b.tasks, 'task still runs', 'tasks still run')} ${displayTaskDefinition(b.taskDefinition)}${since}`;
  });
  return `${label}: ${parts.join(', ')}; new release ${newName}`;
}

/** One line per service; `blockingOnly` leaves out the drained ones (unless every service is drained). */
function ecsLines(report: EcsDrainReport, blockingOnly: boolean): string[] {
  const lines = report.services.flatMap((service) => {
    const blockers = report.blockers.filter((b) => b.cluster === service.cluster && b.service === service.service);
    return blockingOnly && blockers.length === 0 ? [] : [ecsServiceLine(service, blockers)];
  });
  if (lines.length > 0) return lines;
  return report.services.length > 0 ? ecsLines(report, false) : ['no ECS services to check'];
}

function sessionBlocker(b: SessionDrainBlocker): string {
  const who = b.applicationName === '' ? `role "${b.role}" without application_name` : `"${b.applicationName}"`;
  const since = b.since === undefined ? '' : ` (since ${b.since}${b.startTimesHidden ? ', some start times hidden' : ''})`;
  return `${plural(b.sessions, 'session', 'sessions')} of ${who} connected${since}`;
}

function sessionLine(report: SessionDrainReport): string {
  if (report.blockers.length === 0) {
    const unnamed = report.applicationRole === undefined ? '' : ` and no unnamed session of role "${report.applicationRole}"`;
    return `no session with application_name LIKE '${report.applicationNamePattern}'${unnamed} is connected: the old release is drained`;
  }
  return (
    report.blockers.map(sessionBlocker).join('; ') +
    (report.startTimesHidden
      ? ` (start times hidden: the upgrade's database role cannot read other roles' backend_start; grant it pg_read_all_stats to see them)`
      : '')
  );
}

/** The whole report: for ECS one line per service, for database sessions one line. */
export function drainSummary(report: DrainReport): string {
  return report.source === 'ecs' ? ecsLines(report, false).join('\n') : sessionLine(report);
}

/** What still blocks, one line per service (drained services are noise here) or the sessions' line. */
export function blockingLines(report: DrainReport): string[] {
  return report.source === 'ecs' ? ecsLines(report, true) : [sessionLine(report)];
}
