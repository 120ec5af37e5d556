import type { SqlClient } from '../sql/sql-client.ts';

export interface SessionDrainReport {
  readonly drained: boolean;
  readonly source: 'database-sessions';
  readonly checkedAt: string;
  readonly blockers: readonly { applicationName: string; sessions: number; since: string }[];
  readonly summary: string;
}

/**
 * The drain source for fleets not on ECS (EC2, EKS, local runs): old application instances connect with an
 * `application_name` matching a LIKE pattern (e.g. `orders-api/v41%`); the old release is drained when no session
 * of it is connected to this database. Reads pg_stat_activity only.
 */
export async function checkSessionDrain(client: SqlClient, applicationNamePattern: string): Promise<SessionDrainReport> {
  const result = await client.query<{ application_name: string; sessions: number; since_ms: number }>(
    `SELECT application_name, count(*)::int AS sessions,
            (extract(epoch FROM min(backend_start)) * 1000)::float8 AS since_ms
     FROM pg_stat_activity
     WHERE datname = current_database() AND pid <> pg_backend_pid() AND application_name LIKE :pattern
     GROUP BY application_name
     ORDER BY application_name`,
    { pattern: applicationNamePattern },
  );
  const blockers = result.rows.map((r) => ({
    applicationName: r.application_name,
    sessions: r.sessions,
    since: new Date(r.since_ms).toISOString(),
  }));
  return {
    drained: blockers.length === 0,
    source: 'database-sessions',
    checkedAt: new Date().toISOString(),
    blockers,
    summary:
      blockers.length === 0
        ? `no session with application_name LIKE '${applicationNamePattern}' is connected: the old release is drained`
        : blockers
            .map((b) => `${b.sessions} session${b.sessions === 1 ? '' : 's'} of "${b.applicationName}" connected (since ${b.since})`)
            .join('; '),
  };
}
