import { LeaseHeldError, LeaseLostError } from '../errors.ts';
import type { SqlClient, SqlSession } from '../sql/sql-client.ts';
import { STATE_SCHEMA } from './schema.ts';

/** One lease per database: only one upgrade at a time. */
const LEASE_NAME = 'upgrade';

// Timestamps cross both SQL clients as epoch milliseconds: the Data API returns timestamptz as text without zone.
const EXPIRES_MS = `(extract(epoch FROM expires_at) * 1000)::float8 AS expires_ms`;

export interface Lease {
  readonly owner: string;
  readonly expiresAt: Date;
}

/**
 * Takes the lease for `owner` for `ttlSeconds`, or renews it if `owner` already holds it. A lease whose holder
 * died expires and can then be taken. With `takeOverFrom`, a live lease of that run is taken over (the execution
 * that continues a long migration in a new one, which writes nothing after starting it). Throws `LeaseHeldError`
 * naming the live holder otherwise.
 */
export async function acquireLease(
  client: SqlClient,
  owner: string,
  ttlSeconds: number,
  options: { takeOverFrom?: string } = {},
): Promise<Lease> {
  const takeOver = options.takeOverFrom === undefined ? '' : ' OR l.owner = :previous';
  const taken = await client.query<{ owner: string; expires_ms: number }>(
    `INSERT INTO ${STATE_SCHEMA}.lease AS l (name, owner, acquired_at, expires_at)
     VALUES (:name, :owner, now(), now() + make_interval(secs => :ttl))
     ON CONFLICT (name) DO UPDATE
       SET owner = excluded.owner,
           acquired_at = CASE WHEN l.owner = excluded.owner THEN l.acquired_at ELSE now() END,
           expires_at = excluded.expires_at
       WHERE l.owner = excluded.owner OR l.expires_at <= now()${takeOver}
     RETURNING owner, ${EXPIRES_MS}`,
    { name: LEASE_NAME, owner, ttl: ttlSeconds, ...(options.takeOverFrom === undefined ? {} : { previous: options.takeOverFrom }) },
  );
  const row = taken.rows[0];
  if (row) return { owner: row.owner, expiresAt: new Date(row.expires_ms) };
  const holder = await currentLease(client);
  // The holder released it between the two statements: try once more.
  if (!holder) return acquireLease(client, owner, ttlSeconds, options);
  throw new LeaseHeldError(holder.owner, holder.expiresAt);
}

/** Timeouts a step's transaction sets for itself (`SET LOCAL`) together with the lease renewal. */
export interface TransactionTimeouts {
  readonly lockTimeoutMs: number;
  readonly statementTimeoutMs?: number;
}

/**
 * Inside a step's transaction: fails unless `owner` holds a live lease, and extends it. Because it runs in the
 * same transaction as the step's writes, a run that lost its lease can never commit a step.
 *
 * With `timeouts`, the same statement also sets the transaction's lock and statement timeouts (set_config with
 * is_local, i.e. SET LOCAL): one round trip instead of three, which counts per batch (one RDS Data API call each).
 */
export async function renewLease(
  session: SqlSession,
  owner: string,
  ttlSeconds: number,
  timeouts?: TransactionTimeouts,
): Promise<void> {
  const settings = timeouts
    ? `, set_config('lock_timeout', :lock, true) AS lock_timeout` +
      (timeouts.statementTimeoutMs === undefined ? '' : `, set_config('statement_timeout', :statement, true) AS statement_timeout`)
    : '';
  const result = await session.query<{ renewed: number }>(
    `WITH renewed AS (
       UPDATE ${STATE_SCHEMA}.lease SET expires_at = now() + make_interval(secs => :ttl)
       WHERE name = :name AND owner = :owner AND expires_at > now()
       RETURNING 1)
     SELECT (SELECT count(*) FROM renewed)::int AS renewed${settings}`,
    {
      name: LEASE_NAME,
      owner,
      ttl: ttlSeconds,
      ...(timeouts ? { lock: String(timeouts.lockTimeoutMs) } : {}),
      ...(timeouts?.statementTimeoutMs === undefined ? {} : { statement: String(timeouts.statementTimeoutMs) }),
    },
  );
  if (result.rows[0]?.renewed !== 1) {
    const holder = await currentLease(session);
    throw new LeaseLostError(
      holder
        ? `Run ${owner} does not hold the upgrade lease: ${holder.owner} holds it until ${holder.expiresAt.toISOString()}.`
        : `Run ${owner} does not hold the upgrade lease (it expired or was released).`,
    );
  }
}

/** Releases the lease if `owner` holds it; a no-op otherwise (safe to call from every failure path). */
export async function releaseLease(client: SqlClient, owner: string): Promise<boolean> {
  const released = await client.query(`DELETE FROM ${STATE_SCHEMA}.lease WHERE name = :name AND owner = :owner`, {
    name: LEASE_NAME,
    owner,
  });
  return released.rowCount > 0;
}

/** The live lease, or undefined when none is held (an expired lease counts as none). */
export async function currentLease(session: SqlSession): Promise<Lease | undefined> {
  const result = await session.query<{ owner: string; expires_ms: number }>(
    `SELECT owner, ${EXPIRES_MS} FROM ${STATE_SCHEMA}.lease WHERE name = :name AND expires_at > now()`,
    { name: LEASE_NAME },
  );
  const row = result.rows[0];
  return row ? { owner: row.owner, expiresAt: new Date(row.expires_ms) } : undefined;
}
