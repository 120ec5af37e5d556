import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { z } from 'zod';
import { LintToolUnavailableError } from '../errors.ts';

/** One file given to squawk: its text as squawk must read it, and whether emc runs it in one transaction. */
export interface SquawkInput {
  readonly text: string;
  readonly transactional: boolean;
}

/** One squawk finding, by input index; `line` is 1-based in the input's text. */
export interface SquawkFinding {
  readonly input: number;
  readonly rule: string;
  readonly message: string;
  readonly line: number;
}

/** Aurora PostgreSQL's major version: squawk's rules depend on it (a non-volatile default stopped rewriting in 11). */
const PG_VERSION = '17.0';

const gitlabReport = z.array(
  z.object({
    check_name: z.string(),
    description: z.string(),
    location: z.object({ path: z.string(), lines: z.object({ begin: z.number().int().min(0) }) }),
  }),
);

/**
 * Runs squawk once over every input (one process, so `cdk synth` stays fast). Transactional inputs are linted as
 * if wrapped in a transaction, as the engine runs them; the others get squawk's own per-file opt-out. An empty
 * config file keeps a `.squawk.toml` of the working directory from changing the rules.
 */
export function runSquawk(inputs: readonly SquawkInput[], binary: string = squawkBinary()): SquawkFinding[] {
  if (inputs.length === 0) return [];
  const directory = mkdtempSync(join(tmpdir(), 'emc-lint-'));
  try {
    const config = join(directory, 'squawk.toml');
    writeFileSync(config, '');
    const files = inputs.map((input, index) => {
      const file = join(directory, `${index}.sql`);
      // Appended after the last line, so every reported line still points into the user's file.
      writeFileSync(file, input.transactional ? input.text : `${input.text}\n-- squawk-disable-assume-in-transaction\n`);
      return file;
    });
    const run = spawnSync(
      binary,
      ['--reporter', 'gitlab', '--assume-in-transaction', `--pg-version=${PG_VERSION}`, '-c', config, ...files],
      { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 },
    );
    // squawk exits 0 without findings and 1 with them; anything else (or no JSON) is a failure to lint.
    if (run.error || (run.status !== 0 && run.status !== 1)) {
      throw new LintToolUnavailableError(
        `squawk (${binary}) did not run: ${run.error?.message ?? `exit code ${run.status ?? run.signal}: ${run.stderr.trim()}`}`,
        { cause: run.error },
      );
    }
    let report: z.infer<typeof gitlabReport>;
    try {
      report = gitlabReport.parse(JSON.parse(run.stdout));
    } catch (error) {
      const printed = `${run.stdout.slice(0, 200)} ${run.stderr.slice(0, 200)}`.trim() || 'nothing';
      throw new LintToolUnavailableError(`squawk (${binary}) exited with code ${run.status} and printed no report emc can read: ${printed}`, {
        cause: error,
      });
    }
    const byPath = new Map(files.map((file, index) => [file, index]));
    return report.map((f) => {
      const input = byPath.get(f.location.path);
      if (input === undefined) throw new LintToolUnavailableError(`squawk reported a file emc did not give it: ${f.location.path}`);
      return { input, rule: f.check_name, message: f.description, line: f.location.lines.begin + 1 };
    });
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

/** The platform binary of squawk-cli, found the way squawk-cli's own launcher finds it. */
export function squawkBinary(): string {
  let launcher: { getBinaryPath(): string };
  try {
    launcher = createRequire(import.meta.url)('squawk-cli/js/index.js') as { getBinaryPath(): string };
  } catch (error) {
    throw new LintToolUnavailableError('the squawk-cli package is not installed, and emc lint needs it for the lock-safety rules', { cause: error });
  }
  try {
    return launcher.getBinaryPath();
  } catch (error) {
    // squawk-cli says which platform package is missing, or that the platform has none.
    throw new LintToolUnavailableError((error as Error).message, { cause: error });
  }
}
