import type { SqlClient, SqlSession } from '../sql/sql-client.ts';
import { NO_VERSION } from './composite-version.ts';
import { boundedTransaction, DEFAULT_BOUNDS, readTransaction, type EngineBounds } from './engine-transaction.ts';

/** The schema holding the tool's own tables, apart from the application's. */
export const STATE_SCHEMA = 'emc';

/**
 * SQLSTATEs the engine's functions raise (class `EM`, which PostgreSQL does not use), told apart by code, never by
 * text: the run does not hold a live lease; the lease row stayed locked past `lock_timeout` (both `hold_lease`, so
 * every function that writes); the step's progress row is not at the cursor, pass and checksum the batch was planned
 * from (`run_batch`).
 */
export const BATCH_LEASE_NOT_HELD = 'EM001';
export const BATCH_LEASE_BUSY = 'EM002';
export const BATCH_PROGRESS_MOVED = 'EM003';

/**
 * One migrate batch as ONE statement (one RDS Data API call, autocommitted): renew the lease, read the next key
 * range, run the step's statement, move the cursor. A function call is one statement, so all of it commits or none
 * of it does, without BeginTransaction / CommitTransaction; a run that lost its lease raises before it writes.
 *
 * - The lease is held first (`hold_lease`), which sets `lock_timeout` for everything after it: the lease row's lock
 *   wait and the step statement's alike.
 * - `statement_timeout` cannot be set here: PostgreSQL arms it when a statement starts, and set_config or a SET
 *   clause inside a running statement does not re-arm it. The caller bounds the call (see `QueryOptions`).
 * - `p_range_sql` (undefined for a statement that finds its own work) is run with `$1` the batch size and `$2` the
 *   cursor's key as text[]; it answers the range's first key, last key (text[]) and key count. The step's statement
 *   is run with `$1` / `$2` the first / last key (text[], cast back by the statement) and `$3` the batch size.
 * - The cursor moves only from `p_previous`, the value the caller read: two runners can never both apply a batch.
 * - A single-column cursor is the key's text; a row key's is the JSON array of its columns' texts.
 * - `database_ms` is the statement's own time in the database so far (from `statement_timestamp()`): the caller's
 *   time for the call less this is the round trip, which already leaves the database a gap between two batches
 *   (`batchPauseMs`). Version 4 added it; a function's result columns cannot be replaced in place, hence the DROP.
 */
/**
 * The first thing every engine function that writes does: fails unless `p_owner` holds a live lease, and extends
 * it. It sets `lock_timeout` first (set_config, local to the calling statement's implicit transaction, so in force
 * for the rest of that statement's work); a wait on the lease row becomes `BATCH_LEASE_BUSY` (a subtransaction around
 * that one UPDATE), so it is never mistaken for a step's own 55P03. A run that lost its lease raises
 * `BATCH_LEASE_NOT_HELD` before its caller writes anything, and the caller's statement, all of it, rolls back.
 */
const HOLD_LEASE_FUNCTION = `CREATE OR REPLACE FUNCTION ${STATE_SCHEMA}.hold_lease(p_owner text, p_ttl_seconds integer, p_lock_timeout_ms integer)
   RETURNS void LANGUAGE plpgsql VOLATILE AS $fn$
   DECLARE
     renewed integer;
   BEGIN
     PERFORM set_config('lock_timeout', p_lock_timeout_ms::text, true);
     BEGIN
       UPDATE ${STATE_SCHEMA}.lease SET expires_at = now() + make_interval(secs => p_ttl_seconds)
       WHERE name = 'upgrade' AND owner = p_owner AND expires_at > now();
       GET DIAGNOSTICS renewed = ROW_COUNT;
     EXCEPTION WHEN lock_not_available THEN
       RAISE EXCEPTION 'run % could not renew its lease: the lease row stayed locked past lock_timeout', p_owner
         USING ERRCODE = '${BATCH_LEASE_BUSY}';
     END;
     IF renewed <> 1 THEN
       RAISE EXCEPTION 'run % does not hold the upgrade lease', p_owner USING ERRCODE = '${BATCH_LEASE_NOT_HELD}';
     END IF;
   END
   $fn$`;

/**
 * A migrate step's start in one statement (one RDS Data API call, autocommitted): hold the lease, create the step's
 * progress row if absent, and answer it (`row_to_json`). A row takes the file's checksum (and strategy) while it has
 * no committed batch, or when it has none recorded: inspect refused every unapplied step whose batches ran with
 * another file or an unrecorded one (unless restartSteps reset it), so that is an applied step reopened by an earlier
 * release of the tool, whose file the drift check compared with the applied one.
 */
const START_MIGRATION_FUNCTION = `CREATE OR REPLACE FUNCTION ${STATE_SCHEMA}.start_migration(
     p_owner text, p_ttl_seconds integer, p_lock_timeout_ms integer, p_step text, p_checksum text, p_strategy text)
   RETURNS text LANGUAGE plpgsql VOLATILE AS $fn$
   BEGIN
     PERFORM ${STATE_SCHEMA}.hold_lease(p_owner, p_ttl_seconds, p_lock_timeout_ms);
     INSERT INTO ${STATE_SCHEMA}.migrate_progress AS p (step_id, checksum, strategy) VALUES (p_step, p_checksum, p_strategy)
     ON CONFLICT (step_id) DO UPDATE SET checksum = excluded.checksum, strategy = excluded.strategy
     WHERE (p.batches = 0 OR p.checksum IS NULL) AND p.checksum IS DISTINCT FROM excluded.checksum;
     RETURN (SELECT row_to_json(p)::text FROM ${STATE_SCHEMA}.migrate_progress p WHERE p.step_id = p_step);
   END
   $fn$`;

/**
 * A migrate step's end in one statement (one RDS Data API call, autocommitted), once its pending query found no row:
 * hold the lease, mark its progress finished, record it applied (a step reopened after it finished is applied
 * already: the version stays), and write its `succeeded` history row, all or nothing. A migrate step moves neither
 * head of the composite version; the version row is written as `recordApplied` writes it (database-state.ts), and
 * the heads are answered. Start and finish times come from the caller's clock, as `recordHistory` takes them.
 */
const FINISH_MIGRATION_FUNCTION = `CREATE OR REPLACE FUNCTION ${STATE_SCHEMA}.finish_migration(
     p_owner text, p_ttl_seconds integer, p_lock_timeout_ms integer,
     p_step text, p_release text, p_number integer, p_checksum text, p_run_id text,
     p_started_ms bigint, p_finished_ms bigint, p_rows bigint,
     OUT expand_head text, OUT contract_head text)
   LANGUAGE plpgsql VOLATILE AS $fn$
   BEGIN
     PERFORM ${STATE_SCHEMA}.hold_lease(p_owner, p_ttl_seconds, p_lock_timeout_ms);
     UPDATE ${STATE_SCHEMA}.migrate_progress SET finished = true, updated_at = now() WHERE step_id = p_step;
     IF EXISTS (SELECT FROM ${STATE_SCHEMA}.applied_step WHERE step_id = p_step) THEN
       SELECT v.expand_step, v.contract_step INTO expand_head, contract_head FROM ${STATE_SCHEMA}.version v;
     ELSE
       INSERT INTO ${STATE_SCHEMA}.applied_step (step_id, release, phase, number, checksum, run_id)
       VALUES (p_step, p_release, 'migrate', p_number, p_checksum, p_run_id);
       SELECT v.expand_step, v.contract_step INTO expand_head, contract_head FROM ${STATE_SCHEMA}.version v FOR UPDATE;
       INSERT INTO ${STATE_SCHEMA}.version AS v (singleton, expand_step, contract_step, composite, updated_at)
       VALUES (true, expand_head, contract_head,
               CASE WHEN expand_head IS NULL AND contract_head IS NULL THEN '${NO_VERSION}'
                    ELSE concat_ws(', ', expand_head, contract_head) END,
               now())
       ON CONFLICT (singleton) DO UPDATE
         SET expand_step = excluded.expand_step, contract_step = excluded.contract_step,
             composite = excluded.composite, updated_at = now();
     END IF;
     INSERT INTO ${STATE_SCHEMA}.history
       (run_id, step_id, phase, checksum, started_at, finished_at, duration_ms, rows_affected, outcome)
     VALUES (p_run_id, p_step, 'migrate', p_checksum, to_timestamp(p_started_ms / 1000.0), to_timestamp(p_finished_ms / 1000.0),
             p_finished_ms - p_started_ms, p_rows, 'succeeded');
   END
   $fn$`;

const BATCH_FUNCTION = `CREATE OR REPLACE FUNCTION ${STATE_SCHEMA}.run_batch(
     p_owner text, p_ttl_seconds integer, p_lock_timeout_ms integer,
     p_step text, p_checksum text, p_previous text, p_pass integer, p_batch_size integer,
     p_range_sql text, p_multi_key boolean, p_statement text,
     OUT ran boolean, OUT batch_rows bigint, OUT batch_keys integer, OUT cursor_after text, OUT last_of_pass boolean,
     OUT database_ms float8)
   LANGUAGE plpgsql VOLATILE AS $fn$
   DECLARE
     first_key text[];
     last_key text[];
   BEGIN
     PERFORM ${STATE_SCHEMA}.hold_lease(p_owner, p_ttl_seconds, p_lock_timeout_ms);
     ran := false;
     database_ms := 0;
     batch_rows := 0;
     batch_keys := 0;
     cursor_after := p_previous;
     last_of_pass := false;
     IF p_range_sql IS NOT NULL THEN
       EXECUTE p_range_sql INTO first_key, last_key, batch_keys USING p_batch_size,
         CASE WHEN p_previous IS NULL THEN NULL::text[]
              WHEN p_multi_key THEN ARRAY(SELECT json_array_elements_text(p_previous::json))
              ELSE ARRAY[p_previous] END;
       IF first_key IS NULL THEN
         batch_keys := 0;
         database_ms := extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000;
         RETURN;
       END IF;
       cursor_after := CASE WHEN p_multi_key THEN to_json(last_key)::text ELSE last_key[1] END;
       last_of_pass := batch_keys < p_batch_size;
     END IF;
     EXECUTE p_statement USING first_key, last_key, p_batch_size;
     GET DIAGNOSTICS batch_rows = ROW_COUNT;
     UPDATE ${STATE_SCHEMA}.migrate_progress AS p
     SET cursor = cursor_after, rows_done = p.rows_done + batch_rows, pass_rows = p.pass_rows + batch_rows,
         keys_scanned = p.keys_scanned + batch_keys, batches = p.batches + 1, updated_at = now()
     WHERE p.step_id = p_step AND p.cursor IS NOT DISTINCT FROM p_previous AND p.pass = p_pass AND p.checksum = p_checksum;
     IF NOT FOUND THEN
       RAISE EXCEPTION 'the migrate progress of % was changed by another run during a batch', p_step
         USING ERRCODE = '${BATCH_PROGRESS_MOVED}';
     END IF;
     ran := true;
     database_ms := extract(epoch FROM clock_timestamp() - statement_timestamp()) * 1000;
   END
   $fn$`;

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
  // Version 3: one migrate batch in one statement (see `BATCH_FUNCTION`). Version 4: the lease held by one function
  // every writing function calls, a migrate step's start and end in one statement each, and the batch's own time.
  HOLD_LEASE_FUNCTION,
  `DROP FUNCTION IF EXISTS ${STATE_SCHEMA}.run_batch(text, integer, integer, text, text, text, integer, integer, text, boolean, text)`,
  BATCH_FUNCTION,
  START_MIGRATION_FUNCTION,
  FINISH_MIGRATION_FUNCTION,
];

/**
 * The version of the state tables `STATE_DDL` builds, kept as the schema's comment. A schema of an earlier version
 * (created by an earlier release of the tool) is brought up to this one in place: every statement of `STATE_DDL` is
 * idempotent, so running them all again upgrades any earlier version and changes nothing on a current one.
 */
const STATE_SCHEMA_VERSION = `${STATE_SCHEMA} state schema 4`;

/** Arbitrary constant: the advisory lock that serialises creation of the state schema. */
const SCHEMA_LOCK_KEY = 0x656d63;

export async function ensureStateSchema(client: SqlClient, bounds: EngineBounds = DEFAULT_BOUNDS): Promise<void> {
  // The common case, a current schema, in one call (one autocommitted catalog read that waits on no lock) rather
  // than a transaction's four: every migrate call starts here.
  if (await stateSchemaCurrent(client)) return;
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
