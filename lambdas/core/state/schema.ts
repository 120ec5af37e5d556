import type { SqlClient, SqlSession } from '../sql/sql-client.ts';
import { boundedTransaction, DEFAULT_BOUNDS, readTransaction, type EngineBounds } from './engine-transaction.ts';

/** The schema holding the tool's own tables, apart from the application's. */
export const STATE_SCHEMA = 'emc';

/**
 * The tool's own tables. Created idempotently on first use, in one transaction under an advisory lock so two runs
 * starting at once on an empty database cannot race on `CREATE TABLE IF NOT EXISTS`.
 */
const STATE_DDL = [
  `CREATE SCHEMA IF NOT EXISTS ${STATE_SCHEMA}`,
  // One row: the composite version, the expand head and the contract head.
  `CREATE TABLE IF NOT EXISTS ${STATE_SCHEMA}.version (
     singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
     expand_step text,
     contract_step text,
     composite text NOT NULL,
     updated_at timestamptz NOT NULL DEFAULT now()
   )`,
  `CREATE TABLE IF NOT EXISTS ${STATE_SCHEMA}.applied_step (
     step_id text PRIMARY KEY,
     release text NOT NULL,
     phase text NOT NULL CHECK (phase IN ('expand', 'migrate', 'contract')),
     number integer NOT NULL,
     checksum text NOT NULL,
     applied_at timestamptz NOT NULL DEFAULT now(),
     run_id text NOT NULL
   )`,
  `CREATE TABLE IF NOT EXISTS ${STATE_SCHEMA}.migrate_progress (
     step_id text PRIMARY KEY,
     cursor text,
     pass integer NOT NULL DEFAULT 1,
     rows_done bigint NOT NULL DEFAULT 0,
     keys_scanned bigint NOT NULL DEFAULT 0,
     batches bigint NOT NULL DEFAULT 0,
     finished boolean NOT NULL DEFAULT false,
     started_at timestamptz NOT NULL DEFAULT now(),
     updated_at timestamptz NOT NULL DEFAULT now()
   )`,
  `CREATE TABLE IF NOT EXISTS ${STATE_SCHEMA}.history (
     id bigserial PRIMARY KEY,
     run_id text NOT NULL,
     step_id text NOT NULL,
     phase text NOT NULL,
     checksum text NOT NULL,
     started_at timestamptz NOT NULL,
     finished_at timestamptz,
     duration_ms bigint,
     rows_affected bigint,
     outcome text NOT NULL CHECK (outcome IN ('running', 'succeeded', 'continued', 'failed', 'interrupted')),
     error text
   )`,
  `CREATE INDEX IF NOT EXISTS history_step_idx ON ${STATE_SCHEMA}.history (step_id, id)`,
  `CREATE TABLE IF NOT EXISTS ${STATE_SCHEMA}.lease (
     name text PRIMARY KEY,
     owner text NOT NULL,
     acquired_at timestamptz NOT NULL DEFAULT now(),
     expires_at timestamptz NOT NULL
   )`,
];

/** Arbitrary constant: the advisory lock that serialises creation of the state schema. */
const SCHEMA_LOCK_KEY = 0x656d63;

export async function ensureStateSchema(client: SqlClient, bounds: EngineBounds = DEFAULT_BOUNDS): Promise<void> {
  let creating = false;
  try {
    await boundedTransaction(client, bounds, 'creating the emc schema', async (tx) => {
      if (await stateSchemaExists(tx)) return;
      creating = true;
      await tx.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_KEY})`);
      for (const ddl of STATE_DDL) await tx.query(ddl);
    });
  } catch (error) {
    // A run that waited on the lock while another created the schema still has the schema's absence in its catalog
    // cache for the rest of that transaction, so `IF NOT EXISTS` fails with a duplicate key. The schema is complete
    // by then (the other run held the lock until it committed): a fresh look finds it. Any other failure is thrown.
    if (creating && (await readTransaction(client, bounds, 'looking for the emc schema', (tx) => stateSchemaExists(tx)))) return;
    throw error;
  }
}

/** True once the state tables exist; read-only callers (plan, version) treat a missing schema as an empty state. */
export async function stateSchemaExists(session: SqlSession | SqlClient): Promise<boolean> {
  const result = await session.query<{ present: boolean }>(
    `SELECT to_regclass(:name) IS NOT NULL AS present`,
    { name: `${STATE_SCHEMA}.lease` },
  );
  return result.rows[0]?.present === true;
}
