import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import {
  CatalogError,
  DIRECTIVES,
  PHASES,
  RELEASE_NAME,
  RELEASES_FILE,
  STEP_FILE,
  stepId,
  type DirectiveName,
  type Phase,
} from '../../lambdas/core/index.ts';
import { UsageError } from './cli-errors.ts';
import { EXIT, type ExitCode } from './exit-codes.ts';
import { addJsonOption, addMigrationsOption, type CommandHost } from './host.ts';
import { printJson, println } from './output.ts';

export interface NewStepResult {
  /** The new file, relative to the migrations directory (`cactus/expand02_add_title.sql`). */
  readonly file: string;
  readonly path: string;
  readonly stepId: string;
  /** True when the release was new and was appended to releases.json. */
  readonly releaseAdded: boolean;
  /** The release listed after this one, when it is not the newest: steps added to it run out of order on a database that ran that one. */
  readonly laterRelease: string | undefined;
}

/** How the template explains each directive; typed by the directive table, so a new directive needs its line here. */
const DIRECTIVE_HELP: Readonly<Record<DirectiveName, { readonly usage: string; readonly help: string }>> = {
  'no-transaction': {
    usage: '',
    help: 'run the statements one by one outside a transaction, as CREATE INDEX CONCURRENTLY needs (name the index, so a re-run after a crash finds it); keep such a statement in a step of its own',
  },
  'allow-destructive': {
    usage: '<reason>',
    help: 'run a statement this phase\'s check refuses; the reason is shown by emc plan and kept in the execution history',
  },
  'allow-lock': {
    usage: '<rule> <reason>',
    help: 'allow one lock-safety finding of emc lint (a squawk rule, see docs/operators.md "Lock-safety lint") in this file; once per rule, with the reason it is safe here',
  },
  keyset: {
    usage: 'table=<[schema.]table> key=<column>[,<column>...]',
    help: 'walk the table in ranges of an indexed key: the statement uses :from_key and :to_key (inclusive), e.g. WHERE id BETWEEN :from_key AND :to_key',
  },
  'repeat-until-zero': {
    usage: '',
    help: 'the statement finds its own work, at most :batch_size rows a batch, and is repeated until it changes no row',
  },
  'batch-size': { usage: '<1-100000>', help: 'a fixed number of rows per batch for this step (by default batches size themselves toward the targetBatchMs setting)' },
  pending: {
    usage: '<SELECT count(*) FROM ... WHERE <row not migrated yet>>',
    help: 'one read-only SELECT counting the rows still to migrate: progress, and contract refuses to run while it finds any (required when the release has contract steps)',
  },
  'no-pending': { usage: '<reason>', help: 'instead of emc:pending, when no row can be left behind: say why' },
};

const PHASE_HELP: Readonly<Record<Phase, readonly string[]>> = {
  expand: [
    'Expand runs before the new release is deployed, while the old release keeps working: add tables, nullable columns',
    'or columns with a constant default, indexes (CREATE INDEX CONCURRENTLY), constraints NOT VALID, and triggers that',
    'keep old and new columns in step while both releases write. Each file runs in one transaction unless marked.',
  ],
  migrate: [
    'Migrate moves data to the new shape while both releases write: exactly one INSERT, UPDATE, DELETE or MERGE, which',
    'emc repeats batch by batch (one transaction each, resumable). Choose exactly one batch strategy below.',
  ],
  contract: [
    'Contract runs once no instance of the old release is left: drop what only the old release used (columns,',
    'triggers, functions), validate constraints. Each file runs in one transaction unless marked.',
  ],
};

/** The file `emc new` writes: the phase's purpose and every directive the phase allows, commented out. */
export function stepTemplate(release: string, phase: Phase, number: number, words: readonly string[]): string {
  const allowed = (Object.keys(DIRECTIVES) as DirectiveName[]).filter((name) =>
    (DIRECTIVES[name].phases as readonly Phase[]).includes(phase),
  );
  return [
    `-- ${stepId(release, phase, number)}: ${words.join(' ')}`,
    '--',
    ...PHASE_HELP[phase].map((line) => `-- ${line}`),
    '--',
    `-- Directives of ${phase === 'expand' ? 'an' : 'a'} ${phase} step: to use one, remove the first "-- " of its line and fill in`,
    '-- the <...>; keep it on a line of its own above the SQL.',
    ...allowed.flatMap((name) => {
      const { usage, help } = DIRECTIVE_HELP[name];
      return [`-- -- emc:${name}${usage ? ` ${usage}` : ''}`, `--      ${help}`];
    }),
    '--',
    '-- Write the SQL below. Until it holds a statement, the catalog refuses this file (an empty step).',
    '',
  ].join('\n');
}

/**
 * Creates the next numbered file of `release` and `phase` with the template, and appends `release` to
 * releases.json when it is new (creating the directory and releases.json for a first release). Refuses, changing
 * nothing, a bad release name, phase or words, a step of the same words already in that phase, and a release
 * folder releases.json does not list.
 */
export function newStep(directory: string, release: string, phase: string, wordArgs: readonly string[]): NewStepResult {
  if (!RELEASE_NAME.test(release)) {
    throw new UsageError(`Bad release name "${release}": a release name is letters, digits, "." and "-", starting with a letter or digit.`);
  }
  if (!(PHASES as readonly string[]).includes(phase)) {
    throw new UsageError(`Bad phase "${phase}": expected one of ${PHASES.join(', ')}.`);
  }
  const words = wordArgs.flatMap((w) => w.split(/[\s_]+/)).filter((w) => w.length > 0);
  const bad = words.filter((w) => !/^[a-z0-9]+$/.test(w));
  if (words.length === 0 || bad.length > 0) {
    throw new UsageError(
      words.length === 0
        ? 'Name the step with one or more words, e.g. emc new cactus expand add title.'
        : `Bad word${bad.length === 1 ? '' : 's'} in the step name: ${bad.map((w) => `"${w}"`).join(', ')}; words are lowercase a-z and 0-9.`,
    );
  }
  const releases = readReleaseList(directory);
  const folder = join(directory, release);
  const listed = releases.includes(release);
  if (!listed && existsSync(folder)) {
    throw new UsageError(
      `Release folder ${folder} exists but ${RELEASES_FILE} does not list "${release}".`,
      `Add "${release}" to ${join(directory, RELEASES_FILE)} where it belongs in the order, then run emc new again.`,
    );
  }
  const suffix = `_${words.join('_')}.sql`;
  let last = 0;
  for (const name of existsSync(folder) ? readdirSync(folder) : []) {
    const match = STEP_FILE.exec(name);
    if (!match || match[1] !== phase) continue;
    if (match[3] === words.join('_')) {
      throw new UsageError(`${release}/${name} already exists: ${phase} step "${words.join(' ')}" is in release ${release}.`, 'Edit that file, or choose other words.');
    }
    last = Math.max(last, Number(match[2]));
  }
  const number = last + 1;
  const file = `${release}/${phase}${String(number).padStart(2, '0')}${suffix}`;
  const path = join(directory, file);
  mkdirSync(folder, { recursive: true });
  // `wx`: never overwrite, even a file created since the folder was read.
  try {
    writeFileSync(path, stepTemplate(release, phase as Phase, number, words), { flag: 'wx' });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`${path} already exists; nothing was changed.`);
    throw error;
  }
  if (!listed) writeReleaseList(directory, [...releases, release]);
  const index = releases.indexOf(release);
  return {
    file,
    path,
    stepId: stepId(release, phase as Phase, number),
    releaseAdded: !listed,
    laterRelease: listed && index < releases.length - 1 ? releases[index + 1] : undefined,
  };
}

/** The releases listed in releases.json; none when the directory has neither it nor any release folder yet. */
function readReleaseList(directory: string): string[] {
  const file = join(directory, RELEASES_FILE);
  if (!existsSync(file)) {
    const folders = existsSync(directory) ? readdirSync(directory, { withFileTypes: true }).filter((e) => e.isDirectory() && !e.name.startsWith('.')) : [];
    if (folders.length === 0) return [];
    throw new CatalogError([
      { file: RELEASES_FILE, message: `missing in ${directory}, which has release folders (${folders.map((f) => f.name).join(', ')}): declare their order in it first` },
    ]);
  }
  let releases: unknown;
  try {
    releases = (JSON.parse(readFileSync(file, 'utf8')) as { releases?: unknown }).releases;
  } catch (error) {
    throw new CatalogError([{ file: RELEASES_FILE, message: `not valid JSON: ${(error as Error).message}` }]);
  }
  if (!Array.isArray(releases) || !releases.every((r): r is string => typeof r === 'string')) {
    throw new CatalogError([{ file: RELEASES_FILE, message: 'expected {"releases": ["<release>", ...]}' }]);
  }
  return releases;
}

/** Rewrites releases.json through a temporary file and a rename, so a crash never leaves half a file. */
function writeReleaseList(directory: string, releases: readonly string[]): void {
  const file = join(directory, RELEASES_FILE);
  const temporary = `${file}.${process.pid}.tmp`;
  writeFileSync(temporary, `{\n  "releases": [${releases.map((r) => JSON.stringify(r)).join(', ')}]\n}\n`);
  renameSync(temporary, file);
}

interface NewFlags {
  readonly migrations: string;
  readonly json?: boolean;
}

export function registerNew(program: Command, host: CommandHost): void {
  const command = program
    .command('new')
    .description('create the next numbered migration file of a release and phase, with a commented template of its directives')
    .argument('<release>', 'the release (appended to releases.json when new)')
    .argument('<phase>', `one of ${PHASES.join(', ')}`)
    .argument('<words...>', 'what the step does, e.g. add title (lowercase words, joined by "_" in the file name)');
  addMigrationsOption(command);
  addJsonOption(command);
  command.addHelpText('after', '\nExit codes: 0 created, 2 bad release name, phase or words, or the step exists, 9 releases.json is invalid.');
  command.action(
    host.action(async (release: string, phase: string, words: string[], flags: NewFlags): Promise<ExitCode> => {
      const result = newStep(flags.migrations, release, phase, words);
      if (flags.json) {
        printJson(host.io, result);
        return EXIT.ok;
      }
      println(host.io, `Created ${result.path} (${result.stepId})`);
      if (result.releaseAdded) println(host.io, `Added release ${release} to ${join(flags.migrations, RELEASES_FILE)}`);
      if (result.laterRelease) {
        println(
          host.io,
          `Warning: release ${result.laterRelease} comes after ${release}; a database that already ran ${result.laterRelease}'s ${phase} steps refuses this one as out of order.`,
        );
      }
      println(host.io, 'Next: write the SQL below the comments (uncomment the directives you need); an empty step does not load.');
      return EXIT.ok;
    }),
  );
}
