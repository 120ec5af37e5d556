import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { BUNDLE_FILE, HANDLER_ENTRIES, lambdaBundles, LAMBDA_BUNDLE_OPTIONS, PACKAGED_BUNDLES, type HandlerEntry } from '../lib/lambda-bundles.ts';

const ROOT = join(import.meta.dirname, '..');
const scratch = mkdtempSync(join(tmpdir(), 'emc-bundles-choice-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** A directory laid out as the installed package's dist/: compiled modules and `lambda/<entry>/index.mjs`. */
function packagedRoot(name: string, entries: readonly string[]): string {
  const root = join(scratch, name);
  mkdirSync(join(root, 'lambdas/handlers'), { recursive: true });
  for (const entry of HANDLER_ENTRIES) writeFileSync(join(root, 'lambdas/handlers', `${entry}.js`), '');
  for (const entry of entries) {
    mkdirSync(join(root, PACKAGED_BUNDLES, entry), { recursive: true });
    writeFileSync(join(root, PACKAGED_BUNDLES, entry, BUNDLE_FILE), `// ${entry}`);
  }
  return root;
}

describe('lambdaBundles: which bundles the construct deploys', () => {
  it('inside this repository (handler sources beside lib/): built from the sources into .emc-local', () => {
    expect(lambdaBundles(ROOT).startsWith(join(ROOT, '.emc-local/lambda-bundles'))).toBe(true);
  });

  it('in the installed package (compiled JavaScript only): the packaged lambda/ directory, built by nothing', () => {
    const root = packagedRoot('installed', HANDLER_ENTRIES);
    expect(lambdaBundles(root)).toBe(join(root, PACKAGED_BUNDLES));
  });

  it('refuses a package whose bundles are missing, naming both places and the missing entries', () => {
    const root = packagedRoot('broken', HANDLER_ENTRIES.filter((entry) => entry !== 'migrate'));
    expect(() => lambdaBundles(root)).toThrow(/handler sources .*lambdas\/handlers.*packaged bundles .*lambda: missing migrate\)/);
  });
});

/** Each entry's task factory (lambdas/handlers/tasks/): its name stays in the bundle, as `keepNames` keeps names. */
const TASK_FACTORY: Record<HandlerEntry, string> = {
  start: 'createStartTask',
  expand: 'createExpandTask',
  migrate: 'createMigrateTask',
  'check-drain': 'createDrainTask',
  contract: 'createContractTask',
  finish: 'createFinishTask',
  'record-failure': 'createRecordFailureTask',
};

describe('the bundles the construct deploys: one task each', () => {
  const directory = lambdaBundles(ROOT);
  const bundle = (entry: HandlerEntry) => readFileSync(join(directory, entry, BUNDLE_FILE), 'utf8');
  /** The AWS SDK clients a bundle imports at run time (external: the Lambda runtime provides them). */
  const sdkClients = (entry: HandlerEntry) => [...new Set(bundle(entry).match(/@aws-sdk\/client-[a-z0-9-]+/g))].sort();

  it('keeps names (what the task markers below rely on)', () => {
    expect(LAMBDA_BUNDLE_OPTIONS.keepNames).toBe(true);
  });

  it.each(HANDLER_ENTRIES)('%s imports the ECS client only if it is the drain function', (entry) => {
    expect(sdkClients(entry)).toEqual(
      entry === 'check-drain' ? ['@aws-sdk/client-ecs', '@aws-sdk/client-rds-data'] : ['@aws-sdk/client-rds-data'],
    );
  });

  it.each(HANDLER_ENTRIES)('%s holds its own task and none of the others', (entry) => {
    const text = bundle(entry);
    const held = HANDLER_ENTRIES.filter((other) => text.includes(`"${TASK_FACTORY[other]}"`));
    expect(held).toEqual([entry]);
  });
});
