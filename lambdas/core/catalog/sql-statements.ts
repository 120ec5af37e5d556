import { parseSync, type ParseResult } from 'libpg-query';
import { withPlaceholdersAsParams } from '../sql/named-parameters.ts';
import { ensureParserLoaded } from '../sql/parser.ts';

/** A statement cut out of a file by PostgreSQL's parser, with its parse tree. */
export interface ParsedStatement {
  /** The statement's text, without its terminating semicolon. */
  readonly sql: string;
  /** 1-based line of the statement's first character. */
  readonly line: number;
  /** The statement's node type (`AlterTableStmt`, ...) and its body. */
  readonly type: string;
  readonly node: Record<string, unknown>;
}

export type SplitResult =
  | { readonly ok: true; readonly statements: ParsedStatement[] }
  | { readonly ok: false; readonly message: string; readonly line: number; readonly column: number };

/**
 * Splits `text` into statements with PostgreSQL's own parser, so semicolons inside strings, comments and
 * dollar-quoted plpgsql bodies never split a statement. `:name` placeholders are allowed (they are parameters).
 * Parser offsets are UTF-8 byte offsets, so slicing is done on the bytes. Requires `ensureParserLoaded()`.
 */
export function splitStatements(text: string): SplitResult {
  // libpg-query's scanner and parser throw on an empty string instead of returning no statements.
  if (text.length === 0) return { ok: true, statements: [] };
  const parsable = withPlaceholdersAsParams(text);
  const bytes = Buffer.from(text, 'utf8');
  let tree: ParseResult;
  try {
    tree = parseSync(parsable);
  } catch (error) {
    // PostgreSQL reports the error position in characters (0-based here), not bytes: convert before slicing bytes.
    const cursor = (error as { sqlDetails?: { cursorPosition?: number } }).sqlDetails?.cursorPosition ?? 0;
    const offset = Buffer.byteLength([...text].slice(0, cursor).join(''));
    return { ok: false, message: (error as Error).message, ...lineAndColumn(bytes, offset) };
  }
  const statements = (tree.stmts ?? []).flatMap((raw): ParsedStatement[] => {
    const wrapper = raw.stmt as Record<string, unknown> | undefined;
    if (!wrapper) return [];
    const start = raw.stmt_location ?? 0;
    const end = raw.stmt_len ? start + raw.stmt_len : bytes.length;
    const piece = bytes.subarray(start, end).toString('utf8');
    // The first statement's range starts at offset 0 and so includes the file's header comments.
    const leading = Buffer.byteLength(piece) - Buffer.byteLength(withoutLeadingComments(piece));
    const type = Object.keys(wrapper)[0]!;
    return [
      {
        sql: withoutLeadingComments(piece).trimEnd().replace(/;$/, ''),
        line: lineAndColumn(bytes, start + leading).line,
        type,
        node: wrapper[type] as Record<string, unknown>,
      },
    ];
  });
  return { ok: true, statements };
}

const LEADING_BLANK_OR_COMMENT = /^(\s+|--[^\n]*(\n|$)|\/\*[\s\S]*?\*\/)/;

function withoutLeadingComments(text: string): string {
  let rest = text;
  for (let m = LEADING_BLANK_OR_COMMENT.exec(rest); m; m = LEADING_BLANK_OR_COMMENT.exec(rest)) {
    rest = rest.slice(m[0].length);
  }
  return rest;
}

function lineAndColumn(bytes: Buffer, offset: number): { line: number; column: number } {
  const before = bytes.subarray(0, Math.min(Math.max(offset, 0), bytes.length)).toString('utf8');
  const lines = before.split('\n');
  return { line: lines.length, column: [...lines[lines.length - 1]!].length + 1 };
}
