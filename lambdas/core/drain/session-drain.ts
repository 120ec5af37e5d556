import { InputError } from '../errors.ts';
import type { SqlClient } from '../sql/sql-client.ts';
import type { SessionDrainBlocker, SessionDrainReport } from './drain-report.ts';

export interface SessionDrainOptions {
  /** LIKE pattern over `application_name` matching only the old release's sessions (e.g. `orders-api/v41%`). */
  readonly applicationNamePattern: string;
  /**
   * The database role the application connects as. Its sessions that set no `application_name` cannot be told
   * apart by release, so they count as the old release's: an instance that forgot to name itself blocks contract
   * instead of being invisible to it. Without it, unnamed sessions are not looked at.
   */
  readonly applicationRole?: string;
}

/** Why a pattern cannot select the old release's sessions, or undefined when it can. */
export function sessionPatternProblem(pattern: string): string | undefined {
  if (!pattern.trim() || /^%+$/.test(pattern.trim())) {
    return `needs a LIKE pattern that matches only the old release's application_name (e.g. "orders-api/v41%"), got "${pattern}"`;
  }
  return undefined;
}

/**
 * The drain source for fleets not on ECS (EC2, EKS, local runs): old application instances connect with an
 * `application_name` matching a LIKE pattern; the old release is drained when no session of it (and, with
 * `applicationRole`, no unnamed session of that role) is connected to this database. Reads pg_stat_activity only,
 * on columns PostgreSQL shows to every role (datname, usename, application_name); backend_start may be hidden.
 * Not filtered on backend_type, which is hidden too.
 */
export async function checkSessionDrain(client: SqlClient, options: SessionDrainOptions): Promise<SessionDrainReport> {
  const { applicationNamePattern: pattern, applicationRole: role } = options;
  const problem = sessionPatternProblem(pattern);
  if (problem) throw new InputError(`Session drain source: ${problem}.`);
  if (role !== undefined && (await client.query<{ own: boolean }>('SELECT current_user = :role AS own', { role })).rows[0]?.own) {
    throw new InputError(
      `Session drain source: applicationRole "${role}" is the role the upgrade itself connects as, so its own unnamed sessions would count as the old release's. Give the application its own database role, or leave applicationRole out.`,
    );
  }
  const result = await client.query<{
    application_name: string;
    role: string | null;
    sessions: number;
    hidden_starts: number;
    since_ms: number | null;
  }>(
    `SELECT application_name, usename AS role, count(*)::int AS sessions,
            (count(*) - count(backend_start))::int AS hidden_starts,
            (extract(epoch FROM min(backend_start)) * 1000)::float8 AS since_ms
     FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid()
       AND (application_name LIKE :pattern OR (application_name = '' AND usename = :role))
     GROUP BY application_name, usename
     ORDER BY application_name, usename`,
    { pattern, role: role ?? null },
  );
  const blockers: SessionDrainBlocker[] = result.rows.map((r) => ({
    applicationName: r.application_name,
    role: r.role ?? '',
    sessions: r.sessions,
    since: r.since_ms === null ? undefined : new Date(r.since_ms).toISOString(),
    startTimesHidden: r.hidden_starts > 0,
  }));
  return {
    drained: blockers.length === 0,
    source: 'database-sessions',
    checkedAt: new Date().toISOString(),
    applicationNamePattern: pattern,
    ...(role !== undefined ? { applicationRole: role } : {}),
    blockers,
    startTimesHidden: blockers.some((b) => b.startTimesHidden),
  };
}
