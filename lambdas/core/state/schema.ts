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
  // Added by schema version 2 (a new schema gets them here too): the step's file checksum and strategy its batches
  // ran with, so that a file changed after some batches committed is refused instead of resumed; and the rows changed
  // since the pass began (repeat-until-zero's bound on work).
  `ALTER TABLE ${STATE_SCHEMA}.migrate_progress ADD COLUMN IF NOT EXISTS checksum text`,
  `ALTER TABLE ${STATE_SCHEMA}.migrate_progress ADD COLUMN IF NOT EXISTS strategy text`,
  `ALTER TABLE ${STATE_SCHEMA}.migrate_progress ADD COLUMN IF NOT EXISTS pass_rows bigint NOT NULL DEFAULT 0`,
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
     outcome text NOT NULL,
     error text
   )`,
  // Version 2 adds the outcome `restarted` (an operator's restartSteps decision).
  `ALTER TABLE ${STATE_SCHEMA}.history DROP CONSTRAINT IF EXISTS history_outcome_check`,
  `ALTER TABLE ${STATE_SCHEMA}.history ADD CONSTRAINT history_outcome_check
     CHECK (outcome IN ('running', 'succeeded', 'continued', 'failed', 'interrupted', 'restarted'))`,
  `CREATE INDEX IF NOT EXISTS history_step_idx ON ${STATE_SCHEMA}.history (step_id, id)`,
  `CREATE TABLE IF NOT EXISTS ${STATE_SCHEMA}.lease (
     name text PRIMARY KEY,
     owner text NOT NULL,
     acquired_at timestamptz NOT NULL DEFAULT now(),
     expires_at timestamptz NOT NULL
   )`,
];

/**
 * The version of the state tables `STATE_DDL` builds, kept as the schema's comment. A schema of an earlier version
 * (created by an earlier release of the tool) is brought up to this one in place: every statement of `STATE_DDL` is
 * idempotent, so running them all again upgrades any earlier version and changes nothing on a current one.
 */
const STATE_SCHEMA_VERSION = `${STATE_SCHEMA} state schema 2`;

/** Arbitrary constant: the advisory lock that serialises creation of the state schema. */
const SCHEMA_LOCK_KEY = 0x656d63;

export async function ensureStateSchema(client: SqlClient, bounds: EngineBounds = DEFAULT_BOUNDS): Promise<void> {
  let creating = false;
  try {
    await boundedTransaction(client, bounds, 'creating or upgrading the emc schema', async (tx) => {
      if (await stateSchemaCurrent(tx)) return;
      creating = true;
      await tx.query(`SELECT pg_advisory_xact_lock(${SCHEMA_LOCK_KEY})`);
      for (const ddl of STATE_DDL) await tx.query(ddl);
      await tx.query(`COMMENT ON SCHEMA ${STATE_SCHEMA} IS '${STATE_SCHEMA_VERSION}'`);
    });
  } catch (error) {
    // A run that waited on the lock while another created the schema still has the schema's absence in its catalog
    // cache for the rest of that transaction, so `IF NOT EXISTS` fails with a duplicate key. The schema is complete
    // by then (the other run held the lock until it committed): a fresh look finds it. Any other failure is thrown.
    if (creating && (await readTransaction(client, bounds, 'looking for the emc schema', (tx) => stateSchemaCurrent(tx)))) return;
    throw error;
  }
}

async function stateSchemaCurrent(client: SqlSession | SqlClient): Promise<boolean> {
  const result = await client.query<{ present: boolean; version: string | null }>(
    `SELECT to_regclass(:name) IS NOT NULL AS present, obj_description(to_regnamespace(:schema), 'pg_namespace') AS version`,
    { name: `${STATE_SCHEMA}.lease`, schema: STATE_SCHEMA },
  );
  return result.rows[0]?.present === true && result.rows[0].version === STATE_SCHEMA_VERSION;
}

/** True once the state tables exist; read-only callers (plan, version) treat a missing schema as an empty state. */
export async function stateSchemaExists(session: SqlSession | SqlClient): Promise<boolean> {
  const result = await session.query<{ present: boolean }>(
    `SELECT to_regclass(:name) IS NOT NULL AS present`,
    { name: `${STATE_SCHEMA}.lease` },
  );
  return result.rows[0]?.present === true;
}
