/**
 * Removes row values from a PostgreSQL error message, so that they never reach a Step Functions Cause, a log line
 * or the history table. What stays is what helps the operator: the message, the constraint, table and column names.
 *
 * PostgreSQL puts row data in these places (src/backend/access/nbtree, executor/execMain.c, utils/adt):
 * - a key detail: `Key (owner_id)=(alice@example.com) already exists.` (unique), `... is not present in table "t".`
 *   (foreign key), `... is still referenced from table "t".`, `... is duplicated.` (CREATE UNIQUE INDEX),
 *   `... conflicts with existing key (c)=(v).` (exclusion);
 * - a row detail: `Failing row contains (1, alice@example.com, null).` (check, not-null, partition, view check);
 * - an input value in the message itself: `invalid input syntax for type integer: "abc"`,
 *   `invalid input value for enum mood: "x"`, `value "99999999999" is out of range for type integer`, and more
 *   generally any quoted string or byte sequence (`: 0xe9 0x41`) of a data exception (SQLSTATE class 22).
 *
 * node-postgres gives the detail separately from the message; the RDS Data API folds it into its message text
 * (`ERROR: ...\n  Detail: Key (id)=(1) already exists.; SQLState: 23505`). Both go through this one function;
 * without `sqlState`, the one at the end of the Data API's message is used.
 */
export function redactRowData(message: string, sqlState?: string): string {
  const redacted = message
    .replace(KEY_VALUES, (_match, key: string, columns: string) => `${key} (${columns})=(${REDACTED})`)
    .replace(FAILING_ROW, `Failing row contains (${REDACTED})$1`)
    .replace(INPUT_VALUE, `$1"${REDACTED}"`)
    .replace(OUT_OF_RANGE_VALUE, `value "${REDACTED}" is out of range`);
  if (!(sqlState ?? TRAILING_SQLSTATE.exec(message)?.[1])?.startsWith('22')) return redacted;
  return redacted.replace(QUOTED, `"${REDACTED}"`).replace(BYTES, ': 0x…');
}

/** What replaces a value: visibly a redaction, never mistaken for data. */
export const REDACTED = 'row data redacted';

/**
 * `Key (<columns>)=(<values>)` (or `key (...)`, the second key of an exclusion conflict) up to the words PostgreSQL
 * puts after the values, or the end of the detail line. Columns may be expressions with one level of parentheses (`lower(email)`); values may contain anything, so the
 * shortest match up to a known continuation is taken, and a value with no known continuation is cut to the end.
 */
const KEY_VALUES =
  /\b([Kk]ey) \(((?:[^()]|\([^()]*\))*)\)=\((?:[\s\S]*?\)(?= already exists| is not present in table| is still referenced from table| is duplicated| conflicts with|\.?(?:; SQLState: [0-9A-Z]{5})?$)|[^\n]*)/gm;

/** The whole row, up to the end of the message (or the Data API's `; SQLState:` suffix): values may hold newlines. */
const FAILING_ROW = /Failing row contains [\s\S]*?(\.?(?:; SQLState: [0-9A-Z]{5})?)$/;

/** PostgreSQL does not escape quotes inside these values: everything up to the line's last quote is the value. */
const INPUT_VALUE = /(invalid input (?:syntax|value) for (?:type|enum) [^:\n]+: )"[^\n]*"/g;
const OUT_OF_RANGE_VALUE = /value "[^\n]*" is out of range/g;

/** The Data API's message ends with `; SQLState: XXXXX`. */
const TRAILING_SQLSTATE = /SQLState:\s*([0-9A-Z]{5})\s*$/i;
/** Quoted strings of a data exception, except an encoding's name (`invalid byte sequence for encoding "UTF8"`). */
const QUOTED = /(?<!encoding )"(?:[^"]|"")*"/g;
const BYTES = /: 0x[0-9a-f]+(?: 0x[0-9a-f]+)*/gi;
