import type { KeysetMigration } from '../steps/keyset-migration.ts';
import type { RepeatUntilZeroMigration } from '../steps/repeat-until-zero-migration.ts';
import { KeysetKeyError } from '../errors.ts';
import { replacePlaceholders } from '../sql/sql-text.ts';
import type { SqlSession } from '../sql/sql-client.ts';

/**
 * How a step's batches run inside the batch function (`run_batch`, state/schema.ts), which plans and runs each batch
 * in the database in one statement.
 */
export interface BatchSource {
  /**
   * The step's statement as the batch function runs it: `$1` and `$2` are the range's first and last key (text[],
   * cast back to the key's types here), `$3` the batch size.
   */
  readonly statement: string;
  /**
   * The range query for a batch after `cursor` (undefined: from the first key), or undefined when the statement finds
   * its own work. `$1` is the batch size, `$2` the cursor's key (text[]); it answers the range's first and last key
   * (text[]) and its key count.
   */
  rangeSql(cursor: string | undefined): string | undefined;
  /** The key has several columns: the cursor is a JSON array of their texts. */
  readonly multiKey: boolean;
  /** True when the statement's result ends the pass (repeat-until-zero: it changed no row). */
  endsPass(rowsAffected: number): boolean;
  /** A cheap estimate of keys left after `keysScanned`, or undefined when the source cannot tell. */
  estimateRemaining(client: SqlSession, keysScanned: number): Promise<number | undefined>;
  /**
   * Why a pass that changed `passRows` rows so far cannot be converging, or undefined. A keyset pass ends at the last
   * key whatever its statement does; a repeat-until-zero pass ends only when a batch changes nothing.
   */
  runaway(passRows: number, batchSize: number): string | undefined;
}

/**
 * Key types the keyset walks, by base type name: ordered by btree, and with a text form that casts back to exactly the
 * value it came from, so a cursor stored as text resumes exactly where the batch stopped. Dates and timestamps are
 * printed through JSON (ISO 8601, full microseconds, the zone offset), which does not depend on `DateStyle`.
 */
const KEY_TYPES: Readonly<Record<string, 'text' | 'iso'>> = {
  int2: 'text',
  int4: 'text',
  int8: 'text',
  numeric: 'text',
  text: 'text',
  varchar: 'text',
  bpchar: 'text',
  uuid: 'text',
  date: 'iso',
  timestamp: 'iso',
  timestamptz: 'iso',
};

/** Types refused for a reason worth saying: their text form (or the value itself) is not exact. */
const INEXACT_TYPES = new Set(['float4', 'float8', 'money']);

interface KeyColumn {
  readonly name: string;
  /** The column's type as SQL (`format_type`), for casts. */
  readonly type: string;
  /** How its value is printed as text (see `KEY_TYPES`). */
  readonly render: 'text' | 'iso';
}

/**
 * Keyset ranges over an indexed key: each batch takes the next `batchSize` keys after the cursor
 * (`WHERE key > cursor ORDER BY key LIMIT n` walks the index from the cursor, so a batch costs the same at 90% as
 * at 10%) and binds the range's first and last key as `:from_key` and `:to_key`, inclusive. A key of several columns
 * is compared as a row, `(a, b) > (:a, :b)`, and `:from_key` / `:to_key` are then rows: `(a, b) BETWEEN :from_key AND
 * :to_key`. Each placeholder becomes the key's text cast to the column's type (the batch function passes keys as
 * text[]), so no client has to guess the type.
 *
 * The key is checked against the catalog first (refused with `KeysetKeyError`, nothing written): every column must
 * exist, be NOT NULL (a NULL key is in no range: its row would never be migrated), be of a type in `KEY_TYPES`, and
 * lead a valid btree index with the column's own collation (the range query sorts in that collation).
 */
export async function keysetSource(client: SqlSession, step: KeysetMigration): Promise<BatchSource> {
  const table = step.table.schema ? `${quote(step.table.schema)}.${quote(step.table.name)}` : quote(step.table.name);
  const columns = await describeKey(client, step, table, step.keys);
  const keyList = columns.map((c) => quote(c.name)).join(', ');
  const aliases = columns.map((_, i) => `k${i}`);
  const single = columns.length === 1;
  // A key as SQL from a text[] of its columns' texts: a value, or for several columns a row of them.
  const keyOf = (array: string) => {
    const values = columns.map((c, i) => `CAST(${array}[${i + 1}] AS ${c.type})`);
    return single ? values[0]! : `ROW(${values.join(', ')})`;
  };
  const rendered = columns.map((c, i) => (c.render === 'iso' ? `to_json(${aliases[i]}) #>> '{}'` : `${aliases[i]}::text`));
  const rangeSql = (withCursor: boolean) =>
    // The first and the last key of the next `$1` keys, with their count, read in key order: min/max would not do
    // (no min(uuid), and a row key has none).
    `WITH b AS MATERIALIZED (
       SELECT ARRAY[${rendered.join(', ')}] AS key, row_number() OVER (ORDER BY ${aliases.join(', ')}) AS rn, count(*) OVER () AS n
       FROM (SELECT ${columns.map((c, i) => `${quote(c.name)} AS ${aliases[i]}`).join(', ')} FROM ${table}
             ${withCursor ? `WHERE (${keyList}) > (${columns.map((c, i) => `CAST($2[${i + 1}] AS ${c.type})`).join(', ')})` : ''}
             ORDER BY ${keyList} LIMIT $1) s)
     SELECT (SELECT key FROM b WHERE rn = 1), (SELECT key FROM b WHERE rn = n), (SELECT n FROM b WHERE rn = 1)::int`;
  const withCursor = rangeSql(true);
  const fromStart = rangeSql(false);

  return {
    statement: replacePlaceholders(step.statements[0].sql, { from_key: keyOf('$1'), to_key: keyOf('$2') }),
    rangeSql: (cursor) => (cursor === undefined ? fromStart : withCursor),
    multiKey: !single,
    endsPass: () => false,
    runaway: () => undefined,
    async estimateRemaining(c, keysScanned) {
      const stats = await c.query<{ rows: number | null }>(
        `SELECT reltuples::float8 AS rows FROM pg_class WHERE oid = to_regclass(:table)`,
        { table },
      );
      const rows = stats.rows[0]?.rows;
      return rows === undefined || rows === null || rows < 0 ? undefined : Math.max(0, Math.round(rows - keysScanned));
    },
  };
}

/** The key's columns from the catalog, or `KeysetKeyError` listing every reason the keyset cannot walk them. */
async function describeKey(
  client: SqlSession,
  step: KeysetMigration,
  table: string,
  keys: readonly string[],
): Promise<KeyColumn[]> {
  // One statement (one call): each key column from the catalog, and whether a btree index leads with them, in order
  // and in each column's collation (the range query walks it from the cursor).
  const described = await client.query<{
    name: string;
    table_found: boolean;
    attnum: number | null;
    type_sql: string | null;
    base_type: string | null;
    not_null: boolean | null;
    indexed: boolean;
  }>(
    `WITH k AS MATERIALIZED (
       SELECT k.name, k.ord, to_regclass(:table) IS NOT NULL AS table_found, a.attnum, a.attcollation,
              format_type(a.atttypid, a.atttypmod) AS type_sql, bt.typname AS base_type, a.attnotnull AS not_null
       FROM unnest(string_to_array(:keys, ',')) WITH ORDINALITY AS k(name, ord)
       LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(:table) AND a.attname = k.name AND a.attnum > 0 AND NOT a.attisdropped
       LEFT JOIN pg_type t ON t.oid = a.atttypid
       LEFT JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END)
     SELECT k.name, k.table_found, k.attnum, k.type_sql, k.base_type, k.not_null,
            EXISTS (SELECT 1 FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
                    WHERE i.indrelid = to_regclass(:table) AND i.indisvalid AND i.indpred IS NULL AND am.amname = 'btree'
                      AND i.indnkeyatts >= (SELECT count(*) FROM k)
                      AND NOT EXISTS (SELECT 1 FROM k c WHERE c.attnum IS NULL OR i.indkey[c.ord - 1] <> c.attnum
                                                           OR i.indcollation[c.ord - 1] <> c.attcollation)) AS indexed
     FROM k ORDER BY k.ord`,
    { table, keys: keys.join(',') },
  );
  const where = `in ${table} (named by "emc:keyset")`;
  if (!described.rows[0]?.table_found) {
    throw new KeysetKeyError(step.id, step.file, [`table ${table} named by "emc:keyset" does not exist`]);
  }
  const problems: string[] = [];
  for (const c of described.rows) {
    const column = quote(c.name);
    if (c.attnum === null) {
      problems.push(`key column ${column} does not exist ${where}`);
    } else if (INEXACT_TYPES.has(c.base_type ?? '')) {
      problems.push(`key column ${column} ${where} has type ${c.type_sql}, which is inexact: a key range bounded by its printed value can skip rows (use an integer, numeric, text, uuid, date or timestamp key)`);
    } else if (!Object.hasOwn(KEY_TYPES, c.base_type ?? '')) {
      problems.push(`key column ${column} ${where} has type ${c.type_sql}, which a keyset cannot walk (supported: integer types, numeric, text, varchar, char, uuid, date, timestamp, timestamptz)`);
    } else if (!c.not_null) {
      problems.push(`key column ${column} ${where} may be NULL: a row whose key is NULL is in no key range and would never be migrated (declare the column NOT NULL, as a primary key is, or choose another key)`);
    }
  }
  if (problems.length === 0 && !described.rows[0]?.indexed) {
    problems.push(`keyset batches need a btree index whose first column${keys.length > 1 ? 's are' : ' is'} ${keys.map(quote).join(', ')} on ${table} (without one every batch scans the table)`);
  }
  if (problems.length > 0) throw new KeysetKeyError(step.id, step.file, problems);
  return described.rows.map((c) => ({ name: c.name, type: c.type_sql!, render: KEY_TYPES[c.base_type!]! }));
}

/**
 * The statement finds its own work, `:batch_size` rows at most; the pass ends when a batch changes nothing.
 *
 * Such a pass has no end of its own: a statement that changes rows it already changed (its WHERE does not exclude
 * migrated rows, or it is a SELECT, whose row count is never zero) would run batches until the execution's history
 * is full. The bound: a converging statement changes each row of the tables it reads or writes about once (an INSERT
 * at most once per source row, an UPDATE or DELETE once per target row), so its rows changed in one pass stay within
 * those tables' sizes. Twice their sizes, plus one batch, leaves room for rows the old release writes meanwhile;
 * beyond it the pass is rewriting rows, and it fails. The sizes are the planner's statistics (`reltuples`), counted
 * only for a table never analysed; read once a call, so the check itself costs nothing per batch.
 */
export async function repeatUntilZeroSource(client: SqlSession, step: RepeatUntilZeroMigration): Promise<BatchSource> {
  const tables = step.tables;
  let rows = 0;
  for (const table of tables) {
    const stats = await client.query<{ rows: number | null }>(
      `SELECT reltuples::float8 AS rows FROM pg_class WHERE oid = to_regclass(:table)`,
      { table },
    );
    const estimate = stats.rows[0]?.rows;
    // Not a table (a CTE's name), or gone: it adds nothing.
    if (estimate === undefined || estimate === null) continue;
    rows += estimate >= 0 ? estimate : Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
  }
  return {
    statement: replacePlaceholders(step.statements[0].sql, { batch_size: '$3' }),
    rangeSql: () => undefined,
    multiKey: false,
    endsPass: (rowsAffected) => rowsAffected === 0,
    runaway(passRows, batchSize) {
      const limit = 2 * Math.round(rows) + batchSize;
      return passRows <= limit
        ? undefined
        : `its batches changed ${passRows} rows in this pass without reaching a batch that changes none, more than twice the ${Math.round(rows)} rows of the tables it reads and writes (${tables.join(', ') || 'none'}) plus one batch: it keeps changing rows it already changed, so it would never end (its WHERE must leave out the rows already migrated; a SELECT always counts one row)`;
    },
    estimateRemaining: async () => undefined,
  };
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}
