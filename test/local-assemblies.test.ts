import { spawnSync } from 'node:child_process';
import { realpathSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { describe, expect, it } from 'vitest';
import { newAssemblyDirectory } from '../bin/local/local-assemblies.ts';

const ROOT = join(import.meta.dirname, '..');

describe('the cloud assemblies of local runs', () => {
  it('are written under the temporary directory, never under the package', () => {
    const directory = realpathSync(newAssemblyDirectory());
    expect(relative(realpathSync(tmpdir()), directory).startsWith('..')).toBe(false);
    expect(relative(realpathSync(ROOT), directory).startsWith('..')).toBe(true);
    expect(newAssemblyDirectory()).not.toBe(directory);
  });

  it('let a staged bundle import the AWS SDK clients as the Lambda runtime provides them', () => {
    const bundle = join(newAssemblyDirectory(), 'index.mjs');
    writeFileSync(
      bundle,
      "import { RDSDataClient } from '@aws-sdk/client-rds-data';\nimport { ECSClient } from '@aws-sdk/client-ecs';\nconsole.log(typeof RDSDataClient, typeof ECSClient);\n",
    );
    const run = spawnSync(process.execPath, [bundle], { cwd: tmpdir(), encoding: 'utf8', env: { PATH: process.env.PATH } });
    expect(run.stderr).toBe('');
    expect(run.stdout.trim()).toBe('function function');
  });
});
