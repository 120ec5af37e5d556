import { LeaseBusyError, LeaseHeldError, LeaseLostError } from '../errors.ts';
import { LOCK_NOT_AVAILABLE, SqlError, type SqlClient, type SqlSession } from '../sql/sql-client.ts';
import {
  boundedTransaction,
  DEFAULT_BOUNDS,
  limitSettings,
  readTransaction,
  type EngineBounds,
  type TransactionLimits,
} from './engine-transaction.ts';
import { STATE_SCHEMA } from './schema.ts';

/** One lease per database: only one upgrade at a time. */
const LEASE_NAME = 'upgrade';

// Timestamps cross both SQL clients as epoch milliseconds: the Data API returns timestamptz as text without zone.
const EXPIRES_MS_VALUE = `(extract(epoch FROM expires_at) * 1000)::float8`;
const EXPIRES_MS = `${EXPIRES_MS_VALUE} AS expires_ms`;

/** What an engine function that writes is told, to hold the lease itself (`emc.hold_lease`, state/schema.ts). */
export interface LeaseHold {
  readonly owner: string;
  readonly ttlSeconds: number;
  readonly lockTimeoutMs: number;
}

export interface Lease {
  readonly owner: string;
  readonly expiresAt: Date;
}

/**
 * Takes the lease for `owner` for `ttlSeconds`, or renews it if `owner` already holds it. A lease whose holder
 * died expires and can then be taken. With `takeOverFrom`, a live lease of that run is taken over (the execution
 * that continues a long migration in a new one, which writes nothing after starting it). Throws `LeaseHeldError`
 * naming the live holder otherwise.
 *
 * The lease row is locked for the whole of each step or batch transaction of its holder (the renewal that starts
 * it), so waiting for it could last as long as any step; instead the statement gives up after `lock_timeout`: with
 * a live lease behind the lock the answer is `LeaseHeldError`, otherwise (an expired lease whose holder is inside a
 * transaction, or frozen there) `LeaseBusyError`, retried until that transaction ends.
 */
export async function acquireLease(
  client: SqlClient,
  owner: string,
  ttlSeconds: number,
  options: { takeOverFrom?: string; bounds?: EngineBounds } = {},
): Promise<Lease> {
  const bounds = options.bounds ?? DEFAULT_BOUNDS;
  const takeOver = options.takeOverFrom === undefined ? '' : ' OR l.owner = :previous';
  let row: { owner: string; expires_ms: number } | undefined;
  try {
    row = await boundedTransaction(client, bounds, 'taking the upgrade lease', async (tx) => {
      const taken = await tx.query<{ owner: string; expires_ms: number }>(
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
      return taken.rows[0];
    });
  } catch (error) {
    if (!isLockTimeout(error)) throw error;
    const holder = await readTransaction(client, bounds, 'reading the upgrade lease', (tx) => currentLease(tx));
    if (holder && holder.owner !== owner && holder.owner !== options.takeOverFrom) throw new LeaseHeldError(holder.owner, holder.expiresAt);
    throw new LeaseBusyError(
      await leaseLocker(client, bounds),
      bounds.lockTimeoutMs,
      `${holder ? `run ${holder.owner} holds the lease until ${holder.expiresAt.toISOString()}, and one of its own transactions (a previous attempt, maybe frozen) still locks the row` : 'the lease is expired or free, but its last holder is still inside a transaction (or frozen there)'}; ${owner} did not take it.`,
      { cause: error },
    );
  }
  if (row) return { owner: row.owner, expiresAt: new Date(row.expires_ms) };
  const holder = await readTransaction(client, bounds, 'reading the upgrade lease', (tx) => currentLease(tx));
  // The holder released it between the two statements: try once more.
  if (!holder) return acquireLease(client, owner, ttlSeconds, options);
  throw new LeaseHeldError(holder.owner, holder.expiresAt);
}

/**
 * Inside a step's transaction, as its first statement: fails unless `owner` holds a live lease, and extends it.
 * Because it runs in the same transaction as the step's writes, a run that lost its lease can never commit a step.
 *
 * The same statement sets the transaction's `limits` (set_config with is_local, i.e. SET LOCAL): one round trip
 * instead of several, which counts per batch (one RDS Data API call each). They are set in a CTE the UPDATE's WHERE
 * depends on, so they are in force before the lease row is locked: this statement's own wait for the row is
 * bounded by their lock_timeout too (`LeaseBusyError`).
 */
export async function renewLease(
  session: SqlSession,
  owner: string,
  ttlSeconds: number,
  limits: TransactionLimits,
): Promise<void> {
  const settings = limitSettings(limits);
  let renewed: number | undefined;
  try {
    const result = await session.query<{ renewed: number }>(
      `WITH limits AS MATERIALIZED (SELECT ${settings.sql}),
       renewed AS (
         UPDATE ${STATE_SCHEMA}.lease SET expires_at = now() + make_interval(secs => :ttl)
         WHERE name = :name AND owner = :owner AND expires_at > now() AND EXISTS (SELECT FROM limits)
         RETURNING 1)
       SELECT (SELECT count(*) FROM renewed)::int AS renewed, (SELECT count(*) FROM limits)::int AS limits_set`,
      { name: LEASE_NAME, owner, ttl: ttlSeconds, ...settings.params },
    );
    renewed = result.rows[0]?.renewed;
  } catch (error) {
    if (!isLockTimeout(error)) throw error;
    throw new LeaseBusyError(undefined, limits.lockTimeoutMs, `run ${owner} could not renew its lease; nothing was written.`, {
      cause: error,
    });
  }
  if (renewed !== 1) throw leaseLost(owner, await currentLease(session));
}

/** `LeaseLostError` for `owner`, naming the live `holder` if there is one. */
export function leaseLost(owner: string, holder: Lease | undefined): LeaseLostError {
  return new LeaseLostError(
    holder
      ? `Run ${owner} does not hold the upgrade lease: ${holder.owner} holds it until ${holder.expiresAt.toISOString()}.`
      : `Run ${owner} does not hold the upgrade lease (it expired or was released).`,
  );
}

/**
 * The live lease as a JSON value (`{ owner, expires_ms }`, or null when none is held), for a select list that reads
 * it beside other state in one statement; `leaseFromJson` reads it back.
 */
export const LEASE_JSON = `(SELECT json_build_object('owner', owner, 'expires_ms', ${EXPIRES_MS_VALUE})
   FROM ${STATE_SCHEMA}.lease WHERE name = '${LEASE_NAME}' AND expires_at > now())`;

export function leaseFromJson(json: { owner: string; expires_ms: number } | null): Lease | undefined {
  return json ? { owner: json.owner, expiresAt: new Date(json.expires_ms) } : undefined;
}

/** Releases the lease if `owner` holds it; a no-op otherwise (safe to call from every failure path). */
export async function releaseLease(client: SqlClient, owner: string, bounds: EngineBounds = DEFAULT_BOUNDS): Promise<boolean> {
  try {
    return await boundedTransaction(client, bounds, 'releasing the upgrade lease', async (tx) => {
      const released = await tx.query(`DELETE FROM ${STATE_SCHEMA}.lease WHERE name = :name AND owner = :owner`, {
        name: LEASE_NAME,
        owner,
      });
      return released.rowCount > 0;
    });
  } catch (error) {
    if (!isLockTimeout(error)) throw error;
    throw new LeaseBusyError(await leaseLocker(client, bounds), bounds.lockTimeoutMs, `run ${owner} could not release the lease.`, {
      cause: error,
    });
  }
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

/**
 * The backend whose transaction holds the lock on the lease row, when a single transaction does (the row's xmax is
 * then its transaction id); undefined when it cannot be told (several lockers, or the lock is gone by now).
 */
async function leaseLocker(client: SqlClient, bounds: EngineBounds): Promise<number | undefined> {
  const result = await readTransaction(client, bounds, 'looking for the lease row\'s locker', (tx) =>
    tx.query<{ pid: number }>(
      `SELECT l.pid FROM ${STATE_SCHEMA}.lease e
       JOIN pg_locks l ON l.locktype = 'transactionid' AND l.transactionid = e.xmax AND l.mode = 'ExclusiveLock' AND l.granted
       WHERE e.name = :name AND l.pid <> pg_backend_pid()`,
      { name: LEASE_NAME },
    ),
  );
  return result.rows[0]?.pid;
}

function isLockTimeout(error: unknown): boolean {
  return error instanceof SqlError && error.sqlState === LOCK_NOT_AVAILABLE;
}
