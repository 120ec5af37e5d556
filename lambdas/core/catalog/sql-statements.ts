import { parseSync, scanSync, type ParseResult, type ScanToken } from 'libpg-query';
import { withPlaceholdersAsParams } from '../sql/named-parameters.ts';
import { ensureParserLoaded } from '../sql/parser.ts';

/** A statement cut out of a file by PostgreSQL's parser, with its parse tree. */
export interface ParsedStatement {
  /** The statement's text, without its terminating semicolon. */
  readonly sql: string;
  /** 1-based line of the statement's first character. */
  readonly line: number;
  /** UTF-8 byte offsets in the file of the statement's first token and of the end of its last (before any `;`). */
  readonly start: number;
  readonly end: number;
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
  const tokens = scanSync(text).tokens.filter((t) => !COMMENT_TOKENS.has(t.tokenName));
  const statements = (tree.stmts ?? []).flatMap((raw): ParsedStatement[] => {
    const wrapper = raw.stmt as Record<string, unknown> | undefined;
    if (!wrapper) return [];
    // A statement's range may include the comments before it: its own text runs from its first token to its last.
    const from = raw.stmt_location ?? 0;
    const to = raw.stmt_len ? from + raw.stmt_len : bytes.length;
    const inside = tokens.filter((t) => t.start >= from && t.end <= to && t.text !== ';');
    const start = inside[0]!.start;
    const end = inside[inside.length - 1]!.end;
    const type = Object.keys(wrapper)[0]!;
    return [
      {
        sql: bytes.subarray(start, end).toString('utf8'),
        line: lineAndColumn(bytes, start).line,
        start,
        end,
        type,
        node: wrapper[type] as Record<string, unknown>,
      },
    ];
  });
  return { ok: true, statements };
}

const COMMENT_TOKENS = new Set(['SQL_COMMENT', 'C_COMMENT']);

/** A psql meta-command (`\set`, `\i`, `\connect`, ...) found in a file: psql runs them, PostgreSQL cannot. */
export interface MetaCommand {
  readonly command: string;
  readonly line: number;
  readonly column: number;
}

/**
 * The psql meta-commands in `text`, found with PostgreSQL's scanner (so a backslash inside a string or a
 * dollar-quoted body is not one). Empty when the text does not even scan; the parser then reports why.
 */
export function psqlMetaCommands(text: string): MetaCommand[] {
  if (text.length === 0) return [];
  let tokens: ScanToken[];
  try {
    tokens = scanSync(text).tokens;
  } catch {
    return [];
  }
  const bytes = Buffer.from(text, 'utf8');
  return tokens.flatMap((token, index) => {
    if (token.text !== '\\') return [];
    const next = tokens[index + 1];
    const command = next && next.start === token.end ? `\\${next.text}` : '\\';
    return [{ command, ...lineAndColumn(bytes, token.start) }];
  });
}

/** 1-based line and column (in characters) of a UTF-8 byte offset of `bytes`. */
export function lineAndColumn(bytes: Buffer, offset: number): { line: number; column: number } {
  const before = bytes.subarray(0, Math.min(Math.max(offset, 0), bytes.length)).toString('utf8');
  const lines = before.split('\n');
  return { line: lines.length, column: [...lines[lines.length - 1]!].length + 1 };
}
