import { InputError } from '../errors.ts';
import type { SqlClient } from '../sql/sql-client.ts';

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

export interface SessionDrainBlocker {
  /** `''` for the application role's unnamed sessions. */
  readonly applicationName: string;
  readonly role: string;
  readonly sessions: number;
  /** The oldest session's start; undefined when PostgreSQL hides it from the upgrade's role. */
  readonly since: string | undefined;
}

export interface SessionDrainReport {
  readonly drained: boolean;
  readonly source: 'database-sessions';
  readonly checkedAt: string;
  readonly blockers: readonly SessionDrainBlocker[];
  /**
   * Some blocking sessions' start times are hidden: without `pg_read_all_stats` (or membership of the session's
   * role), pg_stat_activity shows another role's session with its database, role and application_name but a NULL
   * backend_start (and state, query, backend_type).
   */
  readonly startTimesHidden: boolean;
  readonly summary: string;
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
  const blockers = result.rows.map((r) => ({
    applicationName: r.application_name,
    role: r.role ?? '',
    sessions: r.sessions,
    since: r.since_ms === null ? undefined : new Date(r.since_ms).toISOString(),
    hidden: r.hidden_starts > 0,
  }));
  const startTimesHidden = blockers.some((b) => b.hidden);
  const unnamed = role === undefined ? '' : ` and no unnamed session of role "${role}"`;
  return {
    drained: blockers.length === 0,
    source: 'database-sessions',
    checkedAt: new Date().toISOString(),
    blockers: blockers.map(({ hidden: _hidden, ...b }) => b),
    startTimesHidden,
    summary:
      blockers.length === 0
        ? `no session with application_name LIKE '${pattern}'${unnamed} is connected: the old release is drained`
        : blockers.map(describeBlocker).join('; ') +
          (startTimesHidden
            ? ` (start times hidden: the upgrade's database role cannot read other roles' backend_start; grant it pg_read_all_stats to see them)`
            : ''),
  };
}

function describeBlocker(b: SessionDrainBlocker & { hidden: boolean }): string {
  const who = b.applicationName === '' ? `role "${b.role}" without application_name` : `"${b.applicationName}"`;
  const since = b.since === undefined ? '' : ` (since ${b.since}${b.hidden ? ', some start times hidden' : ''})`;
  return `${b.sessions} session${b.sessions === 1 ? '' : 's'} of ${who} connected${since}`;
}
