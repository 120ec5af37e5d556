import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { CatalogError, type CatalogProblem } from '../errors.ts';
import { placeholderNames } from '../sql/named-parameters.ts';
import { ensureParserLoaded } from '../sql/parser.ts';
import { readDirectives, type Directive } from './directives.ts';
import { decodeUtf8, type DecodedText } from './file-text.ts';
import { forbiddenInAnyStep, lintPhase } from './phase-lint.ts';
import { psqlMetaCommands, splitStatements } from './sql-statements.ts';
import { oversizedStatements } from './sql-text-limit.ts';
import { ALL_STEP_KINDS } from '../steps/run-steps.ts';
import type { Step, StepFile } from '../steps/step-kind.ts';
import { PHASES, stepId, type Catalog, type Phase } from './step.ts';

/** The file in the migrations directory that declares the order of releases. */
export const RELEASES_FILE = 'releases.json';

/** A step file's name: phase, number, words (groups 1 to 3). */
export const STEP_FILE = /^(expand|migrate|contract)(\d{2,})_([a-z0-9]+(?:_[a-z0-9]+)*)\.sql$/;
/** A release's name, as releases.json may list it. */
export const RELEASE_NAME = /^[A-Za-z0-9][A-Za-z0-9.-]*$/;
/** Files a release folder may hold besides steps. */
const IGNORED_FILE = /^(\.|README|.*\.md$)/;

const releasesSchema = z.strictObject({
  releases: z
    .array(z.string().regex(RELEASE_NAME, 'a release name is letters, digits, "." and "-", starting with a letter or digit'))
    .min(1, 'list at least one release'),
});

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

  const findings: { line: number; message: string }[] = [];
  for (const statement of split.statements) {
    const forbidden = forbiddenInAnyStep(statement);
    if (forbidden) problem(forbidden, statement.line);
    for (const message of lintPhase(phase, statement)) findings.push({ line: statement.line, message });
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
  if (phase !== 'migrate') {
    for (const statement of split.statements) {
      const names = placeholderNames(statement.sql);
      if (names.length > 0) {
        problem(`${phase} steps take no parameters, found ${names.map((n) => `:${n}`).join(', ')}`, statement.line);
      }
    }
  }

  const noPending = directive('no-pending');
  const step = parseStep({
    common: {
      id: stepId(release, phase, number),
      release,
      phase,
      number,
      file,
      checksum: `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
      lintOverride: override
        ? { reason: override.argument, findings: findings.map((f) => `line ${f.line}: ${f.message}`) }
        : noPending
          ? { reason: noPending.argument, findings: [NO_PENDING_FINDING] }
          : undefined,
    },
    statements: split.statements,
    directive,
    releaseHasContract,
    problem,
    parser: { splitStatements, placeholderNames },
  });
  const sent = split.statements.map((s) => ({ sql: s.sql, line: s.line, what: 'the statement' }));
  const pending = directive('pending');
  if (step?.phase === 'migrate' && step.pendingSql && pending) {
    sent.push({ sql: step.pendingSql, line: pending.line, what: 'the "emc:pending" query' });
  }
  for (const p of oversizedStatements(sent)) problem(p.message, p.line);
  if (problems.length > before) return undefined;
  return step;
}

/** What a phase's directives choose between, as the problems asking for a choice name it. */
const KIND_CHOICE: Readonly<Record<Phase, string>> = { expand: 'step kind', migrate: 'batch strategy', contract: 'step kind' };

/**
 * The step's kind, chosen by its phase and directives as each kind declares (`phases`, `selectedBy`), and that kind's
 * part of the validation: expand and contract steps are transactional unless marked `emc:no-transaction`; a migrate
 * step names its batch strategy.
 */
function parseStep(file: StepFile<Phase>): Step | undefined {
  const { phase } = file.common;
  const kinds = ALL_STEP_KINDS.filter((k) => k.phases.includes(phase));
  const selecting = kinds.flatMap((k) => (k.selectedBy === 'default' ? [] : [{ kind: k, ...k.selectedBy }]));
  const chosen = selecting.filter((s) => file.directive(s.directive));
  const kind = chosen.length === 0 ? kinds.find((k) => k.selectedBy === 'default') : chosen.length === 1 ? chosen[0]!.kind : undefined;
  if (kind) return kind.parse(file);
  file.problem(
    chosen.length > 1
      ? `choose one ${KIND_CHOICE[phase]}: ${chosen.map((s) => `"emc:${s.directive}"`).join(' or ')}, not ${chosen.length === 2 ? 'both' : 'several'}`
      : `a ${phase} step must declare its ${KIND_CHOICE[phase]}: ${selecting.map((s) => `"${s.example}"`).join(' or ')}`,
  );
  return undefined;
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
