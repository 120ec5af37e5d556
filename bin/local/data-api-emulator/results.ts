import type pg from 'pg';
import { DataApiError } from './errors.ts';

/** What the request asks about the shape of the result. */
export interface ResultShape {
  readonly formatRecordsAs?: string;
  readonly includeResultMetadata?: boolean;
  readonly resultSetOptions?: { readonly longReturnType?: string; readonly decimalReturnType?: string };
}

/** A node-postgres result read with `rowMode: 'array'` and every value left as PostgreSQL's text. */
export type RawResult = pg.QueryResult<(string | null)[]>;

const OID = {
  bool: 16,
  bytea: 17,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  float4: 700,
  float8: 701,
  numeric: 1700,
  timestamptz: 1184,
} as const;
const INTEGERS: ReadonlySet<number> = new Set([OID.int2, OID.int4, OID.int8, OID.oid]);
const FLOATS: ReadonlySet<number> = new Set([OID.float4, OID.float8]);

/** java.sql.Types codes, which the Data API's ColumnMetadata.type carries (it is a JDBC driver underneath). */
const JDBC_TYPES: Readonly<Record<string, number>> = {
  bool: -7,
  int2: 5,
  int4: 4,
  int8: -5,
  oid: -5,
  float4: 7,
  float8: 8,
  numeric: 2,
  bytea: -2,
  date: 91,
  time: 92,
  timestamp: 93,
  timestamptz: 93,
  text: 12,
  varchar: 12,
  bpchar: 1,
  name: 12,
};

/**
 * The ExecuteStatement response for a statement's result.
 *
 * - "formatRecordsAs ... only applies to SELECT statements and is ignored for other types of statements"
 *   (reference, ExecuteStatement). Documentation silent on how a SELECT is recognised; emulator's choice: by
 *   PostgreSQL's command tag, so `WITH ... SELECT`, VALUES and TABLE count, and INSERT/UPDATE/DELETE ... RETURNING
 *   return their rows in `records`.
 * - "columnMetadata ... This field is blank if the formatRecordsAs parameter is set to JSON" (reference): metadata
 *   only with `records`, and only when includeResultMetadata is set.
 * - resultSetOptions: "longReturnType ... Specify STRING if the length or precision of numeric values might cause
 *   truncation or rounding errors"; "decimalReturnType ... STRING, the default ... DOUBLE_OR_LONG ... a Long value
 *   if its scale is 0, or to a Double value otherwise" (reference, ResultSetOptions). Documentation silent on JSON;
 *   emulator's choice: they shape `records` only (every integer column is a LONG field there), and
 *   formattedRecords always follows the JSON type mapping.
 * - numberOfRecordsUpdated: "The number of records updated by the request" (reference): the DML row count, 0 for
 *   SELECT and DDL.
 */
export function shapeResult(result: RawResult, shape: ResultShape, typeNames: ReadonlyMap<number, string>): object {
  const isSelect = result.command === 'SELECT';
  const updated = isSelect ? 0 : (result.rowCount ?? 0);
  const hasColumns = result.fields.length > 0;
  if (isSelect && shape.formatRecordsAs === 'JSON') {
    return { formattedRecords: formatJson(result), numberOfRecordsUpdated: 0 };
  }
  if (!hasColumns) return { numberOfRecordsUpdated: updated, generatedFields: [] };
  for (const field of result.fields) {
    // The emulator does not build arrayValue results: refused rather than returned in a shape the client never saw.
    if (typeNames.get(field.dataTypeID)?.startsWith('_')) {
      throw new DataApiError(
        'UnsupportedResultException',
        `The emulator does not return array columns (${field.name}); cast the column to text.`,
      );
    }
  }
  const longAsString = shape.resultSetOptions?.longReturnType === 'STRING';
  const decimalAsNumber = shape.resultSetOptions?.decimalReturnType === 'DOUBLE_OR_LONG';
  const records = result.rows.map((row) =>
    row.map((value, i) => toField(value, result.fields[i]!.dataTypeID, longAsString, decimalAsNumber)),
  );
  return {
    records,
    ...(shape.includeResultMetadata ? { columnMetadata: result.fields.map((f) => columnMetadata(f, typeNames)) } : {}),
    numberOfRecordsUpdated: updated,
  };
}

/** The OIDs of the result's columns that are not built-in types known here (enums, domains, arrays). */
export function unknownTypeOids(result: RawResult): number[] {
  return [...new Set(result.fields.map((f) => f.dataTypeID).filter((oid) => !BUILTIN_NAMES.has(oid)))];
}

const BUILTIN_NAMES: ReadonlyMap<number, string> = new Map([
  [16, 'bool'],
  [17, 'bytea'],
  [18, 'char'],
  [19, 'name'],
  [20, 'int8'],
  [21, 'int2'],
  [23, 'int4'],
  [25, 'text'],
  [26, 'oid'],
  [114, 'json'],
  [700, 'float4'],
  [701, 'float8'],
  [1042, 'bpchar'],
  [1043, 'varchar'],
  [1082, 'date'],
  [1083, 'time'],
  [1114, 'timestamp'],
  [1184, 'timestamptz'],
  [1186, 'interval'],
  [1700, 'numeric'],
  [2950, 'uuid'],
  [3802, 'jsonb'],
]);

export function builtinTypeNames(): Map<number, string> {
  return new Map(BUILTIN_NAMES);
}

function toField(value: string | null, oid: number, longAsString: boolean, decimalAsNumber: boolean): object {
  if (value === null) return { isNull: true };
  if (oid === OID.bool) return { booleanValue: value === 't' };
  if (INTEGERS.has(oid)) return longAsString ? { stringValue: value } : { longValue: Number(value) };
  if (FLOATS.has(oid)) {
    const n = Number(value);
    return Number.isFinite(n) ? { doubleValue: n } : { stringValue: value };
  }
  if (oid === OID.numeric && decimalAsNumber && /^-?\d+(\.\d+)?$/.test(value)) {
    return value.includes('.') ? { doubleValue: Number(value) } : { longValue: Number(value) };
  }
  if (oid === OID.bytea) return { blobValue: hexToBase64(value) };
  return { stringValue: textValue(value, oid) };
}

/**
 * "Other types (including types related to date and time) ... String" and "TIMESTAMP ... YYYY-MM-DD HH:MM:SS[.FFF]":
 * the session runs in UTC (Aurora's default time zone), so a timestamptz is written without its `+00` suffix.
 */
function textValue(value: string, oid: number): string {
  return oid === OID.timestamptz ? value.replace(/\+00(?::00)?$/, '') : value;
}

function hexToBase64(value: string): string {
  return Buffer.from(value.replace(/^\\x/, ''), 'hex').toString('base64');
}

/**
 * formattedRecords, per the JSON type mapping of the Aurora User Guide ("Processing Data API query results in JSON
 * format"): integers and floats are JSON numbers (an int8 is written with all its digits, as the service does:
 * a reader's JSON.parse may round it), numeric is a string, booleans and NULL are native, binary is base64 text, every
 * other type (dates and times included) is a string. Keys are the column labels.
 */
function formatJson(result: RawResult): string {
  const keys = result.fields.map((f) => JSON.stringify(f.name));
  const rows = result.rows.map(
    (row) => `{${row.map((value, i) => `${keys[i]}:${jsonValue(value, result.fields[i]!.dataTypeID)}`).join(',')}}`,
  );
  return `[${rows.join(',')}]`;
}

function jsonValue(value: string | null, oid: number): string {
  if (value === null) return 'null';
  if (oid === OID.bool) return value === 't' ? 'true' : 'false';
  if (INTEGERS.has(oid)) return value;
  if (FLOATS.has(oid)) {
    const n = Number(value);
    return Number.isFinite(n) ? JSON.stringify(n) : JSON.stringify(value);
  }
  if (oid === OID.bytea) return JSON.stringify(hexToBase64(value));
  return JSON.stringify(textValue(value, oid));
}

function columnMetadata(field: pg.FieldDef, typeNames: ReadonlyMap<number, string>): object {
  const typeName = typeNames.get(field.dataTypeID) ?? 'unknown';
  return {
    name: field.name,
    label: field.name,
    typeName,
    type: JDBC_TYPES[typeName] ?? 1111,
    schemaName: '',
    tableName: '',
    isAutoIncrement: false,
    isSigned: INTEGERS.has(field.dataTypeID) || FLOATS.has(field.dataTypeID) || field.dataTypeID === OID.numeric,
    isCurrency: false,
    isCaseSensitive: JDBC_TYPES[typeName] === 12,
    // java.sql.ResultSetMetaData.columnNullableUnknown: node-postgres does not say.
    nullable: 2,
    precision: 0,
    scale: 0,
    arrayBaseColumnType: 0,
  };
}
