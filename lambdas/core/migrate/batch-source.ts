import type { Step } from '../catalog/step.ts';
import { StepFailedError } from '../errors.ts';
import type { SqlParams, SqlSession } from '../sql/sql-client.ts';

/**
 * One batch's work, decided before the batch's statement runs: the parameters to bind, the cursor to store with
 * the batch's writes, and how many keys it covers. `undefined` from `next` means the pass reached the end.
 */
export interface PlannedBatch {
  readonly params: SqlParams;
  readonly cursorAfter: string | undefined;
  readonly keys: number;
  /** True when this batch is the last of the pass (fewer keys than asked for remained). */
  readonly lastOfPass: boolean;
}

export interface BatchSource {
  /** Run inside the batch's transaction, before the statement. */
  next(tx: SqlSession, cursor: string | undefined, batchSize: number): Promise<PlannedBatch | undefined>;
  /** True when the statement's result ends the pass (repeat-until-zero: it changed no row). */
  endsPass(rowsAffected: number): boolean;
  /** A cheap estimate of keys left after `keysScanned`, or undefined when the source cannot tell. */
  estimateRemaining(client: SqlSession, keysScanned: number): Promise<number | undefined>;
}

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);

/**
 * Keyset ranges over an indexed key: each batch takes the next `batchSize` keys after the cursor
 * (`WHERE key > cursor ORDER BY key LIMIT n` walks the index from the cursor, so a batch costs the same at 90% as
 * at 10%) and binds the range's first and last key as `:from_key` and `:to_key`, inclusive.
 */
export async function keysetSource(client: SqlSession, step: Step): Promise<BatchSource> {
  const strategy = step.migration!.strategy;
  if (strategy.kind !== 'keyset') throw new Error(`Internal error: ${step.id} is not a keyset migration`);
  const table = strategy.table.schema ? `${quote(strategy.table.schema)}.${quote(strategy.table.name)}` : quote(strategy.table.name);
  const key = quote(strategy.key);
  const described = await client.query<{ key_type: string | null; indexed: boolean | null; table_found: boolean }>(
    `SELECT to_regclass(:table) IS NOT NULL AS table_found,
            format_type(a.atttypid, a.atttypmod) AS key_type,
            EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indkey[0] = a.attnum AND i.indisvalid
                      AND i.indpred IS NULL) AS indexed
     FROM (SELECT 1) one
     LEFT JOIN pg_attribute a ON a.attrelid = to_regclass(:table) AND a.attname = :key AND NOT a.attisdropped`,
    { table, key: strategy.key },
  );
  const info = described.rows[0]!;
  const problem = !info.table_found
    ? `table ${table} named by "emc:keyset" does not exist`
    : !info.key_type
      ? `key column ${key} named by "emc:keyset" does not exist in ${table}`
      : !info.indexed
        ? `keyset batches need an index whose first column is ${key} on ${table} (without one every batch scans the table)`
        : undefined;
  if (problem) {
    throw new StepFailedError(step.id, '', undefined, `${problem} (${step.file})`, { transactional: true });
  }
  const keyType = info.key_type!;
  const bind = (value: string) => (INTEGER_TYPES.has(keyType) ? BigInt(value) : keyType === 'uuid' ? { uuid: value } : value);

  return {
    async next(tx, cursor, batchSize) {
      const range = await tx.query<{ lo: string | null; hi: string | null; n: number }>(
        `SELECT min(k)::text AS lo, max(k)::text AS hi, count(*)::int AS n
         FROM (SELECT ${key} AS k FROM ${table}
               ${cursor === undefined ? '' : `WHERE ${key} > CAST(:cursor AS ${keyType})`}
               ORDER BY ${key} LIMIT :limit) batch`,
        cursor === undefined ? { limit: batchSize } : { cursor, limit: batchSize },
      );
      const { lo, hi, n } = range.rows[0]!;
      if (n === 0 || lo === null || hi === null) return undefined;
      return { params: { from_key: bind(lo), to_key: bind(hi) }, cursorAfter: hi, keys: n, lastOfPass: n < batchSize };
    },
    endsPass: () => false,
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

/** The statement finds its own work, `:batch_size` rows at most; the pass ends when a batch changes nothing. */
export function repeatUntilZeroSource(): BatchSource {
  return {
    async next(_tx, _cursor, batchSize) {
      return { params: { batch_size: batchSize }, cursorAfter: undefined, keys: 0, lastOfPass: false };
    },
    endsPass: (rowsAffected) => rowsAffected === 0,
    estimateRemaining: async () => undefined,
  };
}

function quote(identifier: string): string {
  return `"${identifier.replaceAll('"', '""')}"`;
}
