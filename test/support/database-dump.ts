import type pg from 'pg';

/**
 * Dumps of a database for "nothing changed" and "same result" assertions, read from the system catalogs: the shape of
 * the application's schemas, every row of the tool's own tables (all columns, times included), and the rows of
 * chosen application tables.
 */

export interface SchemaDump {
  readonly columns: unknown[];
  readonly indexes: unknown[];
  readonly constraints: unknown[];
  readonly triggers: unknown[];
  readonly functions: unknown[];
  readonly tables: unknown[];
}

async function rows(pool: pg.Pool, sql: string, params: unknown[] = []): Promise<unknown[]> {
  return (await pool.query(sql, params)).rows;
}

/** Columns (in order, with type, nullability, default), indexes (with validity), constraints, triggers, functions. */
export async function dumpSchema(pool: pg.Pool, schemas: readonly string[] = ['public']): Promise<SchemaDump> {
  const list = [...schemas];
  return {
    tables: await rows(
      pool,
      `SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind
       FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'v', 'm', 'S', 'p') ORDER BY 1, 2`,
      [list],
    ),
    columns: await rows(
      pool,
      `SELECT table_schema, table_name, column_name, ordinal_position, data_type, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = ANY($1) ORDER BY 1, 2, 4`,
      [list],
    ),
    indexes: await rows(
      pool,
      `SELECT n.nspname AS schema, c.relname AS index, pg_get_indexdef(i.indexrelid) AS def,
              i.indisvalid AS valid, i.indisready AS ready
       FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = ANY($1) ORDER BY 1, 2`,
      [list],
    ),
    constraints: await rows(
      pool,
      `SELECT n.nspname AS schema, con.conrelid::regclass::text AS rel, con.conname, pg_get_constraintdef(con.oid) AS def,
              con.convalidated AS validated
       FROM pg_constraint con JOIN pg_namespace n ON n.oid = con.connamespace
       WHERE n.nspname = ANY($1) ORDER BY 1, 2, 3`,
      [list],
    ),
    triggers: await rows(
      pool,
      `SELECT t.tgrelid::regclass::text AS rel, t.tgname, pg_get_triggerdef(t.oid) AS def, t.tgenabled AS enabled
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE NOT t.tgisinternal AND n.nspname = ANY($1) ORDER BY 1, 2`,
      [list],
    ),
    functions: await rows(
      pool,
      `SELECT n.nspname AS schema, p.proname, pg_get_function_identity_arguments(p.oid) AS args, p.prosrc
       FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
       WHERE n.nspname = ANY($1) ORDER BY 1, 2, 3`,
      [list],
    ),
  };
}

/** Every row of every table of the tool's schema `emc`, all columns; `{ absent: true }` when it does not exist. */
export async function dumpEngineTables(pool: pg.Pool): Promise<Record<string, unknown>> {
  const tables = await pool.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'emc' AND c.relkind = 'r' ORDER BY 1`,
  );
  if (tables.rows.length === 0) return { absent: true };
  const dump: Record<string, unknown> = {};
  for (const { name } of tables.rows) {
    // Ordered by every column: a stable order without knowing the table's key.
    dump[name] = await rows(pool, `SELECT * FROM emc.${name} t ORDER BY t::text`);
  }
  dump.schema = await dumpSchema(pool, ['emc']);
  return dump;
}

export interface DatabaseDump {
  readonly schema: SchemaDump;
  readonly engine: Record<string, unknown>;
  readonly rows: Record<string, unknown[]>;
}

/** Schema, tool tables and the rows of `tables` (each ordered by its text form). */
export async function dumpDatabase(pool: pg.Pool, tables: readonly string[] = []): Promise<DatabaseDump> {
  const data: Record<string, unknown[]> = {};
  for (const table of tables) {
    const exists = await pool.query(`SELECT to_regclass($1) IS NOT NULL AS present`, [table]);
    data[table] = exists.rows[0].present ? await rows(pool, `SELECT * FROM ${table} t ORDER BY t::text`) : ['(absent)'];
  }
  return { schema: await dumpSchema(pool), engine: await dumpEngineTables(pool), rows: data };
}
