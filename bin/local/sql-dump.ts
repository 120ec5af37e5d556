import pg from 'pg';
import { readFileSync } from 'node:fs';
import { psqlMetaCommands, splitStatements, type ParsedStatement } from '../../lambdas/core/catalog/sql-statements.ts';
import { ensureParserLoaded } from '../../lambdas/core/sql/parser.ts';
import { CliError } from '../cli/cli-errors.ts';
import { EXIT } from '../cli/exit-codes.ts';

/** A SQL file given to `emc local` (`--schema`, `--seed`) that cannot be read, parsed or run; names file and line. */
export class SqlFileError extends CliError {
  override readonly name = 'SqlFileError';
  readonly exitCode = EXIT.usage;
  readonly nextAction: string;
  /** `stage` says what had happened: the file was refused as it was read (no server yet), or failed while loading. */
  constructor(
    readonly option: string,
    readonly file: string,
    readonly line: number | undefined,
    message: string,
    stage: 'read' | 'load',
  ) {
    super(`${option} ${file}${line === undefined ? '' : `:${line}`}: ${message}`);
    const fix = line === undefined ? 'Give a file that exists and can be read' : 'Fix the file at the line named';
    const state = stage === 'read' ? 'nothing was started or loaded' : 'the throw-away database was recreated empty';
    this.nextAction = `${fix} and run again; ${state}. ${DUMP_HINT}`;
  }
}

const DUMP_HINT =
  'A dump made with `pg_dump --schema-only --no-owner --no-privileges` (and rows with `pg_dump --data-only --inserts`) loads into an empty server.';

export interface SqlFile {
  /** The option that named the file, for messages (`--schema`, `--seed`). */
  readonly option: string;
  readonly path: string;
}

/**
 * pg_dump 17.6 (and 16.10, 15.14, ...) brackets its output with `\restrict KEY` ... `\unrestrict KEY`, which only
 * restrict psql's own meta-commands while the dump is read: without psql they mean nothing and are skipped. They are
 * found as whole lines before scanning, because the key is random text PostgreSQL's scanner may refuse (`4fJx...`
 * is a malformed number to it).
 */
const RESTRICT_LINE = /^\\(?:un)?restrict(?:[ \t]+\S+)?[ \t]*\r?$/;

/** A SQL file read and split into statements, ready to load. */
export interface ParsedSqlFile {
  readonly file: SqlFile;
  readonly statements: readonly ParsedStatement[];
}

/** Reads and parses each file (before anything is started, so a typo costs no server); throws `SqlFileError`. */
export async function readSqlFiles(files: readonly SqlFile[]): Promise<ParsedSqlFile[]> {
  await ensureParserLoaded();
  return files.map((file) => ({ file, statements: parseSqlFile(file) }));
}

/**
 * Loads parsed SQL files, in order, into `database` on the server `adminUrl` points at, which it (re)creates empty
 * first. Each file runs statement by statement in one session of its own, as `psql -f` would, so a dump's `SET` and
 * `SELECT pg_catalog.set_config('search_path', ...)` lines apply to the statements after them. A failure recreates
 * the database empty (no half-loaded schema is left) and throws a `SqlFileError` naming the file and line. Returns
 * the database's URL.
 */
export async function loadSqlFiles(adminUrl: string, database: string, parsed: readonly ParsedSqlFile[]): Promise<string> {
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  await recreateDatabase(adminUrl, database);
  try {
    for (const { file, statements } of parsed) await runStatements(url.toString(), file, statements);
  } catch (error) {
    await recreateDatabase(adminUrl, database);
    throw error;
  }
  return url.toString();
}

function parseSqlFile(file: SqlFile): ParsedStatement[] {
  let text: string;
  try {
    text = readFileSync(file.path, 'utf8');
  } catch (error) {
    throw new SqlFileError(file.option, file.path, undefined, `cannot be read (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`, 'read');
  }
  const lines = text.split('\n');
  const skipped = new Set<number>();
  lines.forEach((line, index) => {
    if (RESTRICT_LINE.test(line)) (skipped.add(index + 1), (lines[index] = ''));
  });
  const sql = lines.join('\n');
  const meta = psqlMetaCommands(sql)[0];
  if (meta) {
    throw new SqlFileError(
      file.option,
      file.path,
      meta.line,
      `the psql meta-command ${meta.command} cannot run here: emc local sends SQL statements to PostgreSQL, not psql input (COPY ... FROM stdin data needs psql; dump rows as INSERTs)`,
      'read',
    );
  }
  const split = splitStatements(sql);
  if (!split.ok) throw new SqlFileError(file.option, file.path, split.line, split.message, 'read');
  // A \restrict line inside a string or a dollar-quoted body is text, not psql's: skipping it would have changed it.
  for (const statement of split.statements) {
    const last = statement.line + statement.sql.split('\n').length - 1;
    const inside = [...skipped].find((line) => line > statement.line && line < last);
    if (inside !== undefined) {
      throw new SqlFileError(file.option, file.path, inside, `a \\restrict or \\unrestrict line inside the statement starting on line ${statement.line}; only pg_dump's own, between statements, can be skipped`, 'read');
    }
  }
  return split.statements;
}

async function runStatements(url: string, file: SqlFile, statements: readonly ParsedStatement[]): Promise<void> {
  const client = new pg.Client({ connectionString: url, application_name: 'emc-local-load' });
  await client.connect();
  try {
    for (const statement of statements) {
      try {
        // No parameters: the simple query protocol runs the statement text exactly as psql would.
        await client.query(statement.sql);
      } catch (error) {
        const { message, code, position } = error as { message: string; code?: string; position?: string };
        // PostgreSQL's position is 1-based, in characters of the statement: the line it falls on in the file.
        const offset = position === undefined ? 0 : Number(position) - 1;
        const line = statement.line + ([...statement.sql].slice(0, offset).join('').split('\n').length - 1);
        throw new SqlFileError(file.option, file.path, line, `${message}${code ? ` (SQLSTATE ${code})` : ''}`, 'load');
      }
    }
  } finally {
    await client.end();
  }
}

async function recreateDatabase(adminUrl: string, database: string): Promise<void> {
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    const quoted = `"${database.replaceAll('"', '""')}"`;
    await admin.query(`DROP DATABASE IF EXISTS ${quoted} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${quoted}`);
  } finally {
    await admin.end();
  }
}
