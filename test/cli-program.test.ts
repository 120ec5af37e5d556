import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { defaultMigrationsDirectory } from '../bin/cli/database.ts';
import { EXIT, EXIT_CODE_HELP } from '../bin/cli/exit-codes.ts';
import type { LocalDemoOptions } from '../bin/local/local-demo.ts';
import { runEmc } from './support/cli-harness.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const COMMANDS = ['start', 'wait', 'status', 'why', 'history', 'version', 'check', 'plan', 'local', 'new', 'expand', 'migrate', 'contract', 'unlock', 'abort'];

describe('emc program', () => {
  it('lists every command and the exit codes in --help', async () => {
    const run = await runEmc(['--help']);
    expect(run.exitCode).toBe(0);
    for (const command of COMMANDS) expect(run.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    for (const [code, text] of EXIT_CODE_HELP) expect(run.stdout).toContain(`${String(code).padStart(2)}  ${text}`);
  });

  it.each(COMMANDS)('has --help for %s, with its exit codes', async (command) => {
    const run = await runEmc([command, '--help']);
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^Usage: emc ${command} `));
    expect(run.stdout).toContain('Exit codes: 0 ');
  });

  it('documents each exit code once, numbered in order', () => {
    expect(EXIT_CODE_HELP.map(([code]) => code)).toEqual(Object.values(EXIT).sort((a, b) => a - b));
  });

  it.each([
    [['nonsense'], "error: unknown command 'nonsense'"],
    [['status', '--bogus'], "error: unknown option '--bogus'"],
    [['abort'], "error: missing required argument 'execution'"],
    [['wait', 'x', '--timeout', '-3'], '--timeout must be a positive number.'],
  ])('exits 2 on a usage error: %j', async (argv, message) => {
    const run = await runEmc(argv);
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain(message);
  });

  it('runs the local demo with the options given and exits 0 or 1 with its outcome', async () => {
    const calls: LocalDemoOptions[] = [];
    for (const succeeded of [true, false]) {
      const run = await runEmc(['local', '--database-url', 'postgres://x/y', '--migrations', 'demo/migrations', '--rows', '500', '--json'], {
        runLocalDemo: async (options) => {
          calls.push(options);
          options.out?.('{"succeeded": ' + String(succeeded) + '}');
          return { succeeded };
        },
      });
      expect(run.exitCode).toBe(succeeded ? 0 : 1);
      expect(run.json()).toEqual({ succeeded });
    }
    expect(calls[0]).toMatchObject({ databaseUrl: 'postgres://x/y', migrationsDirectory: 'demo/migrations', rows: 500, json: true });
  });

  it('defaults --migrations to the directory cdk.json deploys', () => {
    const project = mkdtempSync(join(tmpdir(), 'emc-project-'));
    expect(defaultMigrationsDirectory(project)).toBe('demo/migrations');
    writeFileSync(join(project, 'cdk.json'), JSON.stringify({ app: 'x', context: { 'emc:migrationsDirectory': 'db/migrations' } }));
    expect(defaultMigrationsDirectory(project)).toBe('db/migrations');
  });

  it('runs as a program: bin/emc.ts --help', async () => {
    const tsx = join(ROOT, 'node_modules/tsx/dist/cli.mjs');
    const { stdout } = await promisify(execFile)(process.execPath, [tsx, join(ROOT, 'bin/emc.ts'), '--help'], { cwd: ROOT });
    expect(stdout).toMatch(/^Usage: emc \[options\] \[command\]/);
    expect(stdout).toContain('Exit codes:');
  });
});
