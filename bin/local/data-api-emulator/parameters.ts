import { parseSync } from 'libpg-query';
import { placeholders } from '../../../lambdas/core/sql/named-parameters.ts';
import { ensureParserLoaded } from '../../../lambdas/core/sql/parser.ts';
import { badRequest } from './errors.ts';

/** A `SqlParameter` as it arrives on the wire (blobValue is base64 text in restJson1). */
export interface WireParameter {
  readonly name?: string;
  readonly typeHint?: string;
  readonly value?: Readonly<Record<string, unknown>>;
}

/** The statement ready for node-postgres: `$n` placeholders, each cast to the type the Data API sends it as. */
export interface BoundStatement {
  readonly text: string;
  readonly values: unknown[];
}

// SqlParameter.typeHint: "DATE ... The accepted format is YYYY-MM-DD", "TIME ... HH:MM:SS[.FFF]",
// "TIMESTAMP ... YYYY-MM-DD HH:MM:SS[.FFF]" (RDS Data API reference, SqlParameter).
const HINT_FORMATS: Readonly<Record<string, RegExp>> = {
  DATE: /^\d{4}-\d{2}-\d{2}$/,
  TIME: /^\d{2}:\d{2}:\d{2}(\.\d{1,9})?$/,
  TIMESTAMP: /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(\.\d{1,9})?$/,
};
// SqlParameter.typeHint: "The corresponding String parameter value is sent as an object of <hint> type to the database."
const HINT_TYPES: Readonly<Record<string, string>> = {
  DATE: 'date',
  TIME: 'time',
  TIMESTAMP: 'timestamp',
  DECIMAL: 'numeric',
  UUID: 'uuid',
  JSON: 'json',
};

/**
 * Binds the request's named parameters to the `:name` placeholders of `sql` (found with PostgreSQL's own scanner,
 * so quoted text, comments and `::` casts are never mistaken for one), and refuses a text of more than one
 * statement.
 *
 * - Each value is sent typed, as the Data API's JDBC driver does: stringValue as varchar (so a string compared with
 *   a uuid or integer column fails unless it carries a typeHint, as on the real service), longValue as bigint,
 *   doubleValue as double precision, booleanValue as boolean, blobValue as bytea, isNull as an untyped NULL.
 * - A placeholder without a parameter is a BadRequestException (the statement cannot be run).
 * - Documentation silent, emulator's choice: a parameter that the statement does not use is ignored.
 */
export async function bindStatement(sql: string, parameters: readonly WireParameter[]): Promise<BoundStatement> {
  await ensureParserLoaded();
  const byName = new Map<string, WireParameter>();
  for (const parameter of parameters) {
    if (typeof parameter.name !== 'string' || parameter.name === '') throw badRequest('A parameter has no name.');
    byName.set(parameter.name, parameter);
  }
  const bytes = Buffer.from(sql, 'utf8');
  const positions = new Map<string, number>();
  const values: unknown[] = [];
  const parts: string[] = [];
  let copied = 0;
  let found: ReturnType<typeof placeholders>;
  try {
    found = placeholders(sql);
  } catch {
    // Text PostgreSQL's scanner cannot read (an unterminated quote): the database reports the syntax error.
    return { text: sql, values: [] };
  }
  for (const p of found) {
    const parameter = byName.get(p.name);
    if (parameter === undefined) throw badRequest(`No value specified for parameter: ${p.name}`);
    let position = positions.get(p.name);
    let cast: string | undefined;
    if (position === undefined) {
      const bound = toValue(parameter);
      values.push(bound.value);
      position = values.length;
      positions.set(p.name, position);
      cast = bound.cast;
    } else {
      cast = toValue(parameter).cast;
    }
    parts.push(bytes.subarray(copied, p.start).toString('utf8'), cast ? `($${position}::${cast})` : `$${position}`);
    copied = p.end;
  }
  parts.push(bytes.subarray(copied).toString('utf8'));
  const text = parts.join('');
  assertOneStatement(text);
  return { text, values };
}

/** Limitations of the Data API (Aurora User Guide): multistatements aren't supported; one SQL statement per call. */
function assertOneStatement(text: string): void {
  let count: number;
  try {
    count = parseSync(text).stmts?.length ?? 0;
  } catch {
    // A syntax error: PostgreSQL itself reports it, with its SQLSTATE, when the statement runs.
    return;
  }
  if (count > 1) throw badRequest('Multistatements are not supported.');
}

function toValue(parameter: WireParameter): { value: unknown; cast: string | undefined } {
  const field = parameter.value ?? {};
  const name = parameter.name!;
  const keys = Object.keys(field);
  // Field is a union: "Only one member of this object can be specified or returned" (reference, SqlParameter).
  if (keys.length !== 1) throw badRequest(`The parameter ${name} must have exactly one value member.`);
  const key = keys[0]!;
  const raw = field[key];
  switch (key) {
    case 'isNull':
      return { value: null, cast: undefined };
    case 'booleanValue':
      return { value: raw === true, cast: 'boolean' };
    case 'longValue':
      return { value: String(raw), cast: 'int8' };
    case 'doubleValue':
      return { value: String(raw), cast: 'float8' };
    case 'blobValue':
      return { value: Buffer.from(String(raw), 'base64'), cast: 'bytea' };
    case 'stringValue': {
      const text = String(raw);
      const hint = parameter.typeHint;
      if (hint === undefined) return { value: text, cast: 'varchar' };
      const type = HINT_TYPES[hint];
      if (type === undefined) throw badRequest(`Invalid typeHint ${hint} for parameter ${name}.`);
      const format = HINT_FORMATS[hint];
      if (format && !format.test(text)) {
        throw badRequest(`The value of parameter ${name} does not match the format of typeHint ${hint}.`);
      }
      return { value: text, cast: type };
    }
    default:
      // The emulator does not bind arrayValue parameters (the engine sends none): refused rather than guessed.
      throw badRequest(`The parameter ${name} has a value of kind ${key}, which this emulator does not support.`);
  }
}
