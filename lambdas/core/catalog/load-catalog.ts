import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CatalogError, type CatalogProblem } from '../errors.ts';
import { placeholderNames } from '../sql/named-parameters.ts';
import { ensureParserLoaded } from '../sql/parser.ts';
import { readDirectives, type Directive } from './directives.ts';
import { decodeUtf8, type DecodedText } from './file-text.ts';
import { DATA_MODIFYING, writesOfSelect } from './parse-tree.ts';
import { forbiddenInAnyStep, lintPhase, needsNoTransaction } from './phase-lint.ts';
import { psqlMetaCommands, splitStatements, type ParsedStatement } from './sql-statements.ts';
import { oversizedStatements } from './sql-text-limit.ts';
import { tablesNamedBy } from './statement-tables.ts';
import { PHASES, stepId, type BatchStrategy, type Catalog, type Migration, type Phase, type Statement, type Step } from './step.ts';

/** The file in the migrations directory that declares the order of releases. */
export const RELEASES_FILE = 'releases.json';

export const STEP_FILE = /^(expand|migrate|contract)(\d{2,})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$/;
export const RELEASE_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]*$/;
/** Files a release folder may hold besides steps. */
const IGNORED_FILE = /^(\.|README|.*\.md$)/;

const releasesSchema = z.strictObject({
  releases: z
    .array(z.string().regex(RELEASE_NAME, 'a release name is letters, digits, "." and "-", starting with a letter or digit'))
    .min(1, 'list at least one release'),
});

/** Placeholders each batch strategy binds; a migrate statement may use these and no others. */
const STRATEGY_PARAMETERS: Record<BatchStrategy['kind'], readonly string[]> = {
  keyset: ['from_key', 'to_key'],
  'repeat-until-zero': ['batch_size'],
};

/**
 * Loads and validates a migrations directory: `releases.json` declaring the order of releases, and one folder a
 * release holding `expandNN_<words>.sql`, `migrateNN_<words>.sql` and `contractNN_<words>.sql`.
 *
 * Every problem found is reported at once, each naming its file, in one `CatalogError`. Reads only files.
 */
export async function loadCatalog(directory: string): Promise<Catalog> {
  await ensureParserLoaded();
  return loadCatalogSync(directory);
}

/** `loadCatalog` for synchronous callers (a CDK construct); `ensureParserLoaded()` must have resolved. */
export function loadCatalogSync(directory: string): Catalog {
  const problems: CatalogProblem[] = [];
  const releases = readReleases(directory, problems);
  const folders = listFolders(directory, problems);

  for (const folder of folders) {
    if (releases && !releases.includes(folder)) {
      problems.push({
        file: `${folder}/`,
        message: `release folder "${folder}" is not listed in ${RELEASES_FILE}; add it where it belongs in the order`,
      });
    }
  }
  const steps: Step[] = [];
  for (const release of releases ?? []) {
    if (!folders.includes(release)) {
      problems.push({ file: RELEASES_FILE, message: `release "${release}" is listed but has no folder ${release}/` });
      continue;
    }
    steps.push(...loadRelease(directory, release, problems));
  }
  if (problems.length > 0) throw new CatalogError(problems);
  return { directory, releases: releases ?? [], steps };
}

function readReleases(directory: string, problems: CatalogProblem[]): string[] | undefined {
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(directory, RELEASES_FILE));
  } catch {
    problems.push({
      file: RELEASES_FILE,
      message: `missing: the migrations directory ${directory} must declare the order of releases in ${RELEASES_FILE}, e.g. {"releases": ["bexar", "cactus"]}`,
    });
    return undefined;
  }
  const decoded = decodeUtf8(bytes);
  if (!decoded.ok) {
    problems.push({ file: RELEASES_FILE, message: notUtf8(decoded), line: decoded.line, column: decoded.column });
    return undefined;
  }
  let json: unknown;
  try {
    json = JSON.parse(decoded.text);
  } catch (error) {
    problems.push({ file: RELEASES_FILE, message: `not valid JSON: ${(error as Error).message}` });
    return undefined;
  }
  const parsed = releasesSchema.safeParse(json);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) {
      problems.push({ file: RELEASES_FILE, message: `${issue.path.join('.') || '(root)'}: ${issue.message}` });
    }
    return undefined;
  }
  const seen = new Set<string>();
  for (const release of parsed.data.releases) {
    if (seen.has(release)) problems.push({ file: RELEASES_FILE, message: `release "${release}" is listed more than once` });
    seen.add(release);
  }
  return parsed.data.releases;
}

function notUtf8(decoded: Extract<DecodedText, { ok: false }>): string {
  const hex = decoded.byte.toString(16).toUpperCase().padStart(2, '0');
  return `not valid UTF-8: byte 0x${hex} at byte offset ${decoded.offset} does not start a UTF-8 character; save the file as UTF-8 (emc never guesses another encoding)`;
}

function listFolders(directory: string, problems: CatalogProblem[]): string[] {
  try {
    return readdirSync(directory, { withFileTypes: true })
      .filter((e) => e.isDirectory() && !e.name.startsWith('.'))
      .map((e) => e.name)
      .sort();
  } catch (error) {
    problems.push({ file: directory, message: `cannot read the migrations directory: ${(error as Error).message}` });
    return [];
  }
}

function loadRelease(directory: string, release: string, problems: CatalogProblem[]): Step[] {
  const folder = join(directory, release);
  const names = readdirSync(folder).sort();
  const byPhase = new Map<Phase, Map<number, string>>(PHASES.map((p) => [p, new Map()]));
  for (const name of names) {
    const file = `${release}/${name}`;
    if (statSync(join(folder, name)).isDirectory()) {
      problems.push({ file, message: 'unexpected folder inside a release folder' });
      continue;
    }
    if (IGNORED_FILE.test(name)) continue;
    const match = STEP_FILE.exec(name);
    if (!match) {
      problems.push({
        file,
        message: 'bad file name: expected expandNN_<words>.sql, migrateNN_<words>.sql or contractNN_<words>.sql (NN two digits or more, words lowercase a-z 0-9 joined by "_")',
      });
      continue;
    }
    const phase = match[1] as Phase;
    const number = Number(match[2]);
    const numbered = byPhase.get(phase)!;
    const other = numbered.get(number);
    if (other !== undefined) {
      problems.push({ file, message: `duplicate number: ${phase}${match[2]} is also used by ${release}/${other}` });
      continue;
    }
    numbered.set(number, name);
  }
  if ([...byPhase.values()].every((m) => m.size === 0)) {
    problems.push({ file: `${release}/`, message: 'release folder has no migration steps' });
  }

  const steps: Step[] = [];
  const contracts = byPhase.get('contract')!.size > 0;
  for (const phase of PHASES) {
    const numbered = byPhase.get(phase)!;
    const numbers = [...numbered.keys()].sort((a, b) => a - b);
    numbers.forEach((number, index) => {
      if (number !== index + 1) {
        problems.push({
          file: `${release}/${numbered.get(number)}`,
          message: `missing number: ${stepId(release, phase, index + 1)} comes before it; ${phase} steps are numbered 01, 02, ... without gaps`,
        });
      }
    });
    for (const number of numbers) {
      const step = loadStep(directory, release, phase, number, numbered.get(number)!, contracts, problems);
      if (step) steps.push(step);
    }
  }
  return steps;
}

function loadStep(
  directory: string,
  release: string,
  phase: Phase,
  number: number,
  name: string,
  releaseHasContract: boolean,
  problems: CatalogProblem[],
): Step | undefined {
  const file = `${release}/${name}`;
  const bytes = readFileSync(join(directory, file));
  const before = problems.length;
  const problem = (message: string, line?: number, column?: number) => problems.push({ file, message, line, column });
  const decoded = decodeUtf8(bytes);
  if (!decoded.ok) {
    problem(notUtf8(decoded), decoded.line, decoded.column);
    return undefined;
  }
  const text = decoded.text;

  const metaCommands = psqlMetaCommands(text);
  for (const m of metaCommands) problem(metaCommandMessage(m.command), m.line, m.column);
  if (metaCommands.length > 0) return undefined;
  const split = splitStatements(text);
  if (!split.ok) {
    problem(`SQL does not parse: ${split.message}`, split.line, split.column);
    return undefined;
  }
  if (split.statements.length === 0) {
    problem('empty file: no SQL statement');
    return undefined;
  }
  const { directives, problems: directiveProblems } = readDirectives(text, phase, split.statements);
  for (const p of directiveProblems) problem(p.message, p.line);
  const directive = (n: Directive['name']) => directives.find((d) => d.name === n);

  const transactional = !directive('no-transaction');
  const findings: { line: number; message: string }[] = [];
  for (const statement of split.statements) {
    const forbidden = forbiddenInAnyStep(statement);
    if (forbidden) problem(forbidden, statement.line);
    for (const message of lintPhase(phase, statement)) findings.push({ line: statement.line, message });
    if (transactional && needsNoTransaction(statement)) {
      problem(
        `${statement.type} cannot run inside a transaction; put it in its own step marked "-- emc:no-transaction"`,
        statement.line,
      );
    }
    if (!transactional && statement.type === 'IndexStmt' && statement.node.concurrent === true && !statement.node.idxname) {
      problem('CREATE INDEX CONCURRENTLY must name its index, so that a re-run after a crash can find it', statement.line);
    }
  }
  const override = directive('allow-destructive');
  if (findings.length > 0 && !override) {
    for (const f of findings) {
      problem(`${f.message} (override with "-- emc:allow-destructive <reason>" only if justified)`, f.line);
    }
  }
  if (override && findings.length === 0) {
    problem('"emc:allow-destructive" overrides nothing: the file has no statement the phase lint refuses', override.line);
  }

  let migration: Migration | undefined;
  if (phase === 'migrate') {
    migration = readMigration(split.statements, directive, releaseHasContract, problem);
  } else {
    for (const statement of split.statements) {
      const names = placeholderNames(statement.sql);
      if (names.length > 0) {
        problem(`${phase} steps take no parameters, found ${names.map((n) => `:${n}`).join(', ')}`, statement.line);
      }
    }
  }
  const sent = split.statements.map((s) => ({ sql: s.sql, line: s.line, what: 'the statement' }));
  if (migration?.pendingSql) sent.push({ sql: migration.pendingSql, line: directive('pending')!.line, what: 'the "emc:pending" query' });
  for (const p of oversizedStatements(sent)) problem(p.message, p.line);
  if (problems.length > before) return undefined;

  const noPending = directive('no-pending');
  return {
    id: stepId(release, phase, number),
    release,
    phase,
    number,
    file,
    checksum: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    statements: split.statements.map(toStatement),
    transactional,
    lintOverride: override
      ? { reason: override.argument, findings: findings.map((f) => `line ${f.line}: ${f.message}`) }
      : noPending
        ? { reason: noPending.argument, findings: [NO_PENDING_FINDING] }
        : undefined,
    migration,
  };
}

/** What emc does instead of a psql meta-command: it sends plain SQL statements, one step per file. */
function metaCommandMessage(command: string): string {
  const instead = /^\\(i|ir|include|include_relative)$/.test(command)
    ? 'emc does not include files: make the included SQL a step of its own'
    : /^\\(c|connect)$/.test(command)
      ? 'a run works on the one database it is given'
      : /^\\(set|unset|setenv)$/.test(command)
        ? 'emc has no variables: write the values into the SQL'
        : 'write plain SQL statements';
  return `psql meta-command "${command}" is not SQL and emc does not run psql: ${instead}`;
}

/** What `emc:no-pending` allows, as plan reports it. */
const NO_PENDING_FINDING = 'no "emc:pending" query: contract does not check that this step left no row to migrate';

function readMigration(
  statements: readonly ParsedStatement[],
  directive: (n: Directive['name']) => Directive | undefined,
  releaseHasContract: boolean,
  problem: (message: string, line?: number) => void,
): Migration | undefined {
  const keyset = directive('keyset');
  const repeat = directive('repeat-until-zero');
  if (!keyset === !repeat) {
    problem(
      keyset
        ? 'choose one batch strategy: "emc:keyset" or "emc:repeat-until-zero", not both'
        : 'a migrate step must declare its batch strategy: "-- emc:keyset table=<table> key=<column>" or "-- emc:repeat-until-zero"',
    );
    return undefined;
  }
  if (statements.length !== 1) {
    problem(`a migrate step holds exactly one statement (the batch), found ${statements.length}`);
    return undefined;
  }
  let strategy: BatchStrategy | undefined;
  if (keyset) {
    strategy = readKeyset(keyset, problem);
  } else {
    strategy = { kind: 'repeat-until-zero', tables: tablesNamedBy(statements[0]!.node) };
  }
  if (!strategy) return undefined;

  const statement = statements[0]!;
  if (!DATA_MODIFYING.has(statement.type)) {
    const found = statement.type === 'SelectStmt' ? 'a SELECT' : statement.type;
    problem(
      `the batch statement must be an INSERT, UPDATE, DELETE or MERGE (a WITH clause before it is fine), found ${found}: ` +
        'emc repeats it batch by batch and counts the rows it changes, and a SELECT returns rows instead ' +
        '(SELECT count(*) returns one every time, so the step would never end); put the data-modifying statement at the top',
      statement.line,
    );
  }
  const allowed = STRATEGY_PARAMETERS[strategy.kind];
  const used = placeholderNames(statement.sql);
  const unknown = used.filter((n) => !allowed.includes(n));
  const missing = allowed.filter((n) => !used.includes(n));
  if (unknown.length > 0 || missing.length > 0) {
    problem(
      `a ${strategy.kind} statement must use ${allowed.map((n) => `:${n}`).join(' and ')}` +
        (missing.length ? `; missing ${missing.map((n) => `:${n}`).join(', ')}` : '') +
        (unknown.length ? `; unknown ${unknown.map((n) => `:${n}`).join(', ')}` : ''),
      statement.line,
    );
  }

  let batchSize: number | undefined;
  const size = directive('batch-size');
  if (size) {
    batchSize = Number(size.argument);
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 100_000) {
      problem(`"emc:batch-size" must be a whole number from 1 to 100000, found "${size.argument}"`, size.line);
    }
  }

  let pendingSql: string | undefined;
  const pending = directive('pending');
  const noPending = directive('no-pending');
  if (pending && noPending) {
    problem('choose "emc:pending" or "emc:no-pending", not both', noPending.line);
  } else if (noPending && !releaseHasContract) {
    problem('"emc:no-pending" overrides nothing: the release has no contract step that would rely on a pending query', noPending.line);
  } else if (!pending && !noPending && releaseHasContract) {
    // Contract drops what the old release used; the pending query is its only evidence that no row was left behind.
    problem(
      'a migrate step of a release with contract steps needs "-- emc:pending <SELECT>": contract checks it to know that ' +
        'no row is left to migrate before it drops anything; if no row can be left behind, say why with "-- emc:no-pending <reason>"',
    );
  }
  if (pending) {
    const split = splitStatements(pending.argument);
    const writes = split.ok && split.statements.length === 1 ? writesOfSelect(split.statements[0]!.node) : [];
    if (!split.ok) {
      problem(`"emc:pending" query does not parse: ${split.message}`, pending.line);
    } else if (split.statements.length !== 1 || split.statements[0]!.type !== 'SelectStmt') {
      problem('"emc:pending" must be one SELECT returning the number of rows still to migrate', pending.line);
    } else if (placeholderNames(pending.argument).length > 0) {
      problem('"emc:pending" query takes no parameters', pending.line);
    } else if (writes.length > 0) {
      problem(
        `"emc:pending" must only read, and this query writes: ${writes.join('; ')}; it runs at every plan, migrate call and contract gate`,
        pending.line,
      );
    } else {
      pendingSql = split.statements[0]!.sql;
    }
  }
  return { strategy, batchSize, pendingSql };
}

function readKeyset(keyset: Directive, problem: (message: string, line?: number) => void): BatchStrategy | undefined {
  const usage = 'table=<[schema.]table> key=<column>[,<column>...]';
  const fields = new Map<string, string>();
  for (const part of keyset.argument.split(/\s+/)) {
    const [name, value, extra] = part.split('=');
    if (!name || value === undefined || extra !== undefined || !['table', 'key'].includes(name) || fields.has(name)) {
      problem(`"emc:keyset" takes "${usage}", found "${keyset.argument}"`, keyset.line);
      return undefined;
    }
    fields.set(name, value);
  }
  const table = fields.get('table')?.split('.');
  const keys = fields.get('key')?.split(',');
  if (!table || !keys || table.length > 2 || ![...table, ...keys].every((n) => IDENTIFIER.test(n))) {
    problem(`"emc:keyset" needs table=<[schema.]table> and key=<column>[,<column>...], each a plain SQL identifier, found "${keyset.argument}"`, keyset.line);
    return undefined;
  }
  // Unquoted identifiers fold to lower case in PostgreSQL; the runner quotes them, so fold here.
  const folded = keys.map((k) => k.toLowerCase());
  if (new Set(folded).size !== folded.length) {
    problem(`"emc:keyset" names a key column twice, found "${keyset.argument}"`, keyset.line);
    return undefined;
  }
  const [schema, name] = table.length === 2 ? table : [undefined, table[0]!];
  return { kind: 'keyset', table: { schema: schema?.toLowerCase(), name: name!.toLowerCase() }, keys: folded };
}

function toStatement(statement: ParsedStatement): Statement {
  if (statement.type === 'IndexStmt' && statement.node.concurrent === true && statement.node.idxname) {
    const relation = statement.node.relation as { schemaname?: string } | undefined;
    return {
      sql: statement.sql,
      line: statement.line,
      concurrentIndex: { schema: relation?.schemaname, name: String(statement.node.idxname) },
    };
  }
  return { sql: statement.sql, line: statement.line };
}
