/** What the Data API client needs to know of a statement's text, found without a SQL parser. */
export interface SqlTextScan {
  /** The `:name` placeholders, in order of first use. */
  readonly placeholders: readonly string[];
  /** Every `:name` occurrence, in order, with its UTF-16 offsets in the text (`start` is the colon's). */
  readonly occurrences: readonly { readonly name: string; readonly start: number; readonly end: number }[];
  /** The statement's first keyword, upper-cased (`SELECT`, `WITH`, `INSERT`, ...), if any. */
  readonly firstKeyword: string | undefined;
}

const IDENT_START = /[A-Za-z_]/;
const IDENT_PART = /[A-Za-z0-9_$]/;

/**
 * A small lexical scan of PostgreSQL text, for the Lambda bundles (which must stay free of libpg-query): skips
 * string literals ('...' with '' escapes, E'...' with backslash escapes), quoted identifiers, dollar-quoted bodies,
 * `--` and nested `/* *\/` comments, `::` casts and array slices (`a[1:n]`); what remains of `:name` is a
 * placeholder. It agrees with PostgreSQL's scanner on every text the engine sends (test/data-api-client.test.ts
 * compares the two); the emulator and PgSqlClient use PostgreSQL's own.
 */
export function scanSqlText(sql: string): SqlTextScan {
  const names: string[] = [];
  const occurrences: { name: string; start: number; end: number }[] = [];
  let firstKeyword: string | undefined;
  let brackets = 0;
  let i = 0;
  const n = sql.length;
  while (i < n) {
    const c = sql[i]!;
    const next = sql[i + 1];
    if (c === '-' && next === '-') {
      const end = sql.indexOf('\n', i);
      i = end < 0 ? n : end + 1;
    } else if (c === '/' && next === '*') {
      let depth = 1;
      i += 2;
      while (i < n && depth > 0) {
        if (sql[i] === '/' && sql[i + 1] === '*') (depth++, (i += 2));
        else if (sql[i] === '*' && sql[i + 1] === '/') (depth--, (i += 2));
        else i++;
      }
    } else if (c === "'") {
      const escapes = i > 0 && /[Ee]/.test(sql[i - 1]!) && (i < 2 || !IDENT_PART.test(sql[i - 2]!));
      i = skipQuoted(sql, i, "'", escapes);
    } else if (c === '"') {
      i = skipQuoted(sql, i, '"', false);
    } else if (c === '$' && (next === '$' || (next !== undefined && IDENT_START.test(next)))) {
      const tagEnd = sql.indexOf('$', i + 1);
      const tag = tagEnd < 0 ? '' : sql.slice(i, tagEnd + 1);
      if (tagEnd >= 0 && /^\$(?:[A-Za-z_][A-Za-z0-9_]*)?\$$/.test(tag)) {
        const close = sql.indexOf(tag, tagEnd + 1);
        i = close < 0 ? n : close + tag.length;
      } else {
        i++;
      }
    } else if (c === ':' && next === ':') {
      i += 2;
    } else if (c === ':' && brackets === 0 && next !== undefined && IDENT_START.test(next)) {
      let end = i + 1;
      while (end < n && /[A-Za-z0-9_]/.test(sql[end]!)) end++;
      const name = sql.slice(i + 1, end);
      if (!names.includes(name)) names.push(name);
      occurrences.push({ name, start: i, end });
      i = end;
    } else if (IDENT_START.test(c)) {
      let end = i + 1;
      while (end < n && IDENT_PART.test(sql[end]!)) end++;
      firstKeyword ??= sql.slice(i, end).toUpperCase();
      i = end;
    } else {
      if (c === '[') brackets++;
      if (c === ']') brackets = Math.max(0, brackets - 1);
      i++;
    }
  }
  return { placeholders: names, occurrences, firstKeyword };
}

/** The index just past the quoted text starting at `start` (an unterminated quote runs to the end). */
function skipQuoted(sql: string, start: number, quote: string, backslashEscapes: boolean): number {
  for (let i = start + 1; i < sql.length; i++) {
    const c = sql[i];
    if (backslashEscapes && c === '\\') i++;
    else if (c === quote) {
      if (sql[i + 1] === quote) i++;
      else return i + 1;
    }
  }
  return sql.length;
}

/**
 * Replaces each `:name` placeholder that `replacements` names with the SQL text given for it (which may hold other
 * placeholders); the rest of the text, and placeholders not named, are unchanged. Parser-free, so the engine can
 * rewrite a step's statement inside Lambda.
 */
export function replacePlaceholders(sql: string, replacements: Readonly<Record<string, string>>): string {
  const parts: string[] = [];
  let copied = 0;
  for (const p of scanSqlText(sql).occurrences) {
    if (!Object.hasOwn(replacements, p.name)) continue;
    parts.push(sql.slice(copied, p.start), replacements[p.name]!);
    copied = p.end;
  }
  parts.push(sql.slice(copied));
  return parts.join('');
}
