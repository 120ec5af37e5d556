import { scanSync } from 'libpg-query';
import { ensureParserLoaded } from './parser.ts';
import type { SqlParams, SqlValue } from './sql-client.ts';

/** The names of the `:name` placeholders in `sql`, in order of first use, found with PostgreSQL's own scanner. */
export function placeholderNames(sql: string): string[] {
  return [...new Set(placeholders(sql).map((p) => p.name))];
}

/**
 * Rewrites `:name` placeholders into PostgreSQL's positional `$1, $2, ...` form, as the RDS Data API does on its
 * side, so that one SQL text runs through both clients. PostgreSQL's scanner finds them, so text inside string
 * literals, quoted identifiers, dollar-quoted bodies and comments, and the `::` cast, are never mistaken for one.
 *
 * A placeholder with no value is an error naming it: a migration that forgot a parameter must fail before it runs,
 * not bind NULL. Requires `ensureParserLoaded()` to have resolved.
 */
export function toPositional(sql: string, params: SqlParams = {}): { text: string; values: SqlValue[] } {
  const bytes = Buffer.from(sql, 'utf8');
  const positions = new Map<string, number>();
  const values: SqlValue[] = [];
  const parts: string[] = [];
  let copied = 0;
  for (const p of placeholders(sql)) {
    if (!Object.hasOwn(params, p.name)) {
      throw new Error(`The SQL uses the parameter :${p.name}, but no value was given for it.`);
    }
    let position = positions.get(p.name);
    if (position === undefined) {
      values.push(params[p.name]!);
      position = values.length;
      positions.set(p.name, position);
    }
    parts.push(bytes.subarray(copied, p.start).toString('utf8'), `$${position}`);
    copied = p.end;
  }
  parts.push(bytes.subarray(copied).toString('utf8'));
  return { text: parts.join(''), values };
}

/**
 * Replaces every `:name` with `$1` padded by spaces to the same byte length, so the text parses and every byte
 * offset the parser reports still points into the original text.
 */
export function withPlaceholdersAsParams(sql: string): string {
  const found = placeholders(sql);
  if (found.length === 0) return sql;
  const bytes = Buffer.from(sql, 'utf8');
  for (const p of found) {
    bytes.write('$1'.padEnd(p.end - p.start, ' '), p.start, 'utf8');
  }
  return bytes.toString('utf8');
}

export interface Placeholder {
  readonly name: string;
  /** UTF-8 byte offsets of `:name` in the text. */
  readonly start: number;
  readonly end: number;
}

/** Every `:name` placeholder of `sql` with its byte offsets. Requires `ensureParserLoaded()` to have resolved. */
export function placeholders(sql: string): Placeholder[] {
  ensureParserLoaded.assertLoaded();
  const tokens = scanSync(sql).tokens;
  const found: Placeholder[] = [];
  // Inside brackets a colon is an array slice (`tags[1:n]`), never a placeholder.
  let brackets = 0;
  for (let i = 0; i + 1 < tokens.length; i++) {
    const colon = tokens[i]!;
    const ident = tokens[i + 1]!;
    if (colon.text === '[') brackets++;
    if (colon.text === ']') brackets = Math.max(0, brackets - 1);
    if (brackets === 0 && colon.text === ':' && ident.start === colon.end && /^[A-Za-z_][A-Za-z0-9_]*$/.test(ident.text)) {
      found.push({ name: ident.text, start: colon.start, end: ident.end });
    }
  }
  return found;
}
