import type pg from 'pg';
import { PgSqlClient } from '../../lambdas/core/sql/pg-client.ts';

/**
 * Fault injection and observation helpers for the engine tests, all on the real PostgreSQL: a switchable pause that
 * SQL under test can call, killing the engine's backend while it sleeps, and snapshots of what a user can see.
 */

/**
 * Creates `testctl.pause_at(point, cond)`: sleeps `seconds` when `cond` holds and the pause point `point` is armed
 * (`armPause`), returns true. Volatile, for statements under test. `testctl.slow_key(point, key)` does the same
 * and returns `key`, declared IMMUTABLE so that an index expression may call it (to stall an index build).
 */
export async function installPause(pool: pg.Pool, seconds = 20): Promise<void> {
  await pool.query(`CREATE SCHEMA IF NOT EXISTS testctl`);
  await pool.query(`CREATE TABLE IF NOT EXISTS testctl.flags (point text PRIMARY KEY, armed boolean NOT NULL)`);
  await pool.query(`
    CREATE OR REPLACE FUNCTION testctl.pause_at(point text, cond boolean DEFAULT true) RETURNS boolean
    LANGUAGE plpgsql VOLATILE AS $$
    BEGIN
      IF cond AND EXISTS (SELECT 1 FROM testctl.flags f WHERE f.point = pause_at.point AND f.armed) THEN
        PERFORM pg_sleep(${seconds});
      END IF;
      RETURN true;
    END
    $$`);
  await pool.query(`
    CREATE OR REPLACE FUNCTION testctl.slow_key(point text, key bigint) RETURNS bigint
    LANGUAGE plpgsql IMMUTABLE AS $$
    BEGIN
      IF EXISTS (SELECT 1 FROM testctl.flags f WHERE f.point = slow_key.point AND f.armed) THEN
        PERFORM pg_sleep(${seconds});
      END IF;
      RETURN key;
    END
    $$`);
}

export async function armPause(pool: pg.Pool, point: string, armed = true): Promise<void> {
  await pool.query(
    `INSERT INTO testctl.flags (point, armed) VALUES ($1, $2) ON CONFLICT (point) DO UPDATE SET armed = excluded.armed`,
    [point, armed],
  );
}

export async function disarmPause(pool: pg.Pool, point: string): Promise<void> {
  await armPause(pool, point, false);
}

/**
 * Waits until a backend of the engine (application_name 'emc-upgrade') in this database sleeps in pg_sleep, then
 * terminates it, as a crash of the connection would. Returns the killed backend's query text.
 */
export async function killEngineBackendWhenSleeping(pool: pg.Pool, timeoutMs = 10_000): Promise<string> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const found = await pool.query<{ pid: number; query: string }>(
      `SELECT pid, query FROM pg_stat_activity
       WHERE datname = current_database() AND application_name = 'emc-upgrade'
         AND state = 'active' AND wait_event = 'PgSleep'`,
    );
    const victim = found.rows[0];
    if (victim) {
      await pool.query(`SELECT pg_terminate_backend($1)`, [victim.pid]);
      return victim.query;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  throw new Error('no engine backend went to sleep in time');
}

/** Everything a user sees of the application schema `public`: tables, columns, indexes, constraints, triggers, functions. */
export async function publicSchema(pool: pg.Pool): Promise<Record<string, unknown[]>> {
  const q = async (sql: string) => (await pool.query(sql)).rows;
  return {
    columns: await q(
      `SELECT table_name, column_name, data_type, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, column_name`,
    ),
    indexes: await q(
      `SELECT c.relname AS index, pg_get_indexdef(i.indexrelid) AS def, i.indisvalid AS valid, i.indisready AS ready
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = 'public' ORDER BY 1`,
    ),
    constraints: await q(
      `SELECT conrelid::regclass::text AS rel, conname, pg_get_constraintdef(oid) AS def, convalidated
       FROM pg_constraint WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2`,
    ),
    triggers: await q(
      `SELECT tgrelid::regclass::text AS rel, tgname FROM pg_trigger
       WHERE NOT tgisinternal AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
       ORDER BY 1, 2`,
    ),
    functions: await q(
      `SELECT proname, prosrc FROM pg_proc WHERE pronamespace = 'public'::regnamespace ORDER BY 1`,
    ),
  };
}

/** The tool's recorded state: version row, applied steps, migrate progress, lease, history (without its times). */
export async function engineState(pool: pg.Pool): Promise<Record<string, unknown[]>> {
  const exists = await pool.query(`SELECT to_regclass('emc.lease') IS NOT NULL AS present`);
  if (!exists.rows[0].present) return { absent: [] };
  const q = async (sql: string) => (await pool.query(sql)).rows;
  return {
    version: await q(`SELECT expand_step, contract_step, composite FROM emc.version`),
    applied: await q(`SELECT step_id, phase, checksum, run_id FROM emc.applied_step ORDER BY step_id`),
    progress: await q(
      `SELECT step_id, cursor, pass, rows_done, keys_scanned, batches, finished FROM emc.migrate_progress ORDER BY step_id`,
    ),
    lease: await q(`SELECT name, owner, acquired_at, expires_at FROM emc.lease ORDER BY name`),
    history: await q(`SELECT id, run_id, step_id, phase, rows_affected, outcome, error FROM emc.history ORDER BY id`),
  };
}

/** Rows of a table as plain objects ordered by id, for before/after comparisons. */
export async function tableRows(pool: pg.Pool, table: string): Promise<unknown[]> {
  return (await pool.query(`SELECT * FROM ${table} ORDER BY id`)).rows;
}

/** Catches the rejection of `promise` (or fails if it resolves), for assertions on typed errors. */
export async function rejectionOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail, but it succeeded');
}

