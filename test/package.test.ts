import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadCatalog } from '../lambdas/core/index.ts';
import { BUNDLE_FILE, HANDLER_ENTRIES, lambdaBundlesFromSource } from '../lib/lambda-bundles.ts';
import { DEMO_MIGRATIONS } from './support/catalog-fixtures.ts';
import { createTestDatabase, type TestDatabase } from './support/database.ts';

// The package as a user gets it: `npm run build`, `npm pack`, the tarball installed into a fresh CDK app beside the
// app's own aws-cdk-lib, constructs and typescript; then type-check, synth and the installed `emc`, all on plain node.
const ROOT = join(import.meta.dirname, '..');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const run = promisify(execFile);
/** This run's npm lifecycle variables would describe this package to the consumer's npm. */
const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !/^npm_(package|lifecycle)_/.test(key)));
const sh = (command: string, args: readonly string[], cwd: string) =>
  run(command, [...args], { cwd, env, maxBuffer: 64 * 1024 * 1024 });

const STACK = `import { App, Stack } from 'aws-cdk-lib';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { DrainSource, ExpandMigrateContractUpgrade } from 'emc-upgrade';
import { loadCatalog, type Catalog } from 'emc-upgrade/engine';

const app = new App({ outdir: 'cdk.out' });
const stack = new Stack(app, 'Consumer', { env: { account: '123456789012', region: 'eu-west-1' } });
const cluster = ecs.Cluster.fromClusterArn(stack, 'Cluster', 'arn:aws:ecs:eu-west-1:123456789012:cluster/app');
const upgrade = new ExpandMigrateContractUpgrade(stack, 'Upgrade', {
  clusterArn: 'arn:aws:rds:eu-west-1:123456789012:cluster:app-db',
  secret: secretsmanager.Secret.fromSecretCompleteArn(stack, 'Secret', 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:app-db-AbCdEf'),
  databaseName: 'app',
  migrationsDirectory: 'migrations',
  drainSource: DrainSource.ecsServices([{ cluster, serviceName: 'web' }]),
});
const catalog: Catalog = await loadCatalog('migrations');
console.log([...upgrade.releases, catalog.steps.length].join(','));
app.synth();
`;

const sha = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

let scratch: string;
let app: string;
let packed: readonly string[];
let installOutput: string;
let db: TestDatabase;
let localDb: TestDatabase;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'emc-package-'));
  db = await createTestDatabase();
  localDb = await createTestDatabase();
  await sh('npm', ['run', 'build'], ROOT);
  // The tarball of what was just built (prepack would build it a second time).
  const { stdout } = await sh('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', scratch], ROOT);
  const [pack] = JSON.parse(stdout) as [{ filename: string; files: { path: string }[] }];
  packed = pack.files.map((file) => file.path);

  app = join(scratch, 'app');
  mkdirSync(app);
  const version = (name: string) => (JSON.parse(readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string }).version;
  writeFileSync(
    join(app, 'package.json'),
    JSON.stringify({
      name: 'consumer-app',
      private: true,
      type: 'module',
      dependencies: {
        'emc-upgrade': `file:${join(scratch, pack.filename)}`,
        'aws-cdk-lib': version('aws-cdk-lib'),
        constructs: version('constructs'),
      },
      devDependencies: { typescript: version('typescript'), '@types/node': version('@types/node') },
    }),
  );
  // No skipLibCheck: the package's declarations are type-checked as the consumer's compiler reads them.
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        lib: ['ES2023', 'ESNext.Disposable'],
        strict: true,
        outDir: 'build',
        types: ['node'],
      },
      include: ['stack.ts'],
    }),
  );
  writeFileSync(join(app, 'stack.ts'), STACK);
  cpSync(DEMO_MIGRATIONS, join(app, 'migrations'), { recursive: true });
  // From npm's cache when it holds everything (this project's install put most of it there), else from the registry.
  const flags = ['--no-audit', '--no-fund'];
  installOutput = await sh('npm', ['install', '--offline', ...flags], app)
    .catch(() => sh('npm', ['install', '--prefer-offline', ...flags], app))
    .then(({ stdout, stderr }) => stdout + stderr);
}, 300_000);

afterAll(async () => {
  await db?.drop();
  await localDb?.drop();
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

describe('the packed package', { timeout: 120_000 }, () => {
  it('ships the compiled JavaScript, its declarations and the Lambda bundles, and no tests, benchmarks or CI files', () => {
    expect(packed.filter((path) => /^(test|bench|\.ci|lambdas|lib|bin|scripts)\//.test(path))).toEqual([]);
    expect(packed.filter((path) => !path.startsWith('dist/')).sort()).toEqual(['LICENSE', 'README.md', 'package.json']);
    expect(packed.filter((path) => path.endsWith('.ts') && !path.endsWith('.d.ts'))).toEqual([]);
    for (const entry of HANDLER_ENTRIES) expect(packed).toContain(`dist/lambda/${entry}/${BUNDLE_FILE}`);
    expect(packed).toEqual(expect.arrayContaining(['dist/lib/index.js', 'dist/lib/index.d.ts', 'dist/bin/emc.js', 'dist/bin/local/lambda-runtime.mjs']));
  });

  it('holds the same bundle bytes the in-repository synth builds from source', () => {
    const fromSource = lambdaBundlesFromSource();
    for (const entry of HANDLER_ENTRIES) {
      expect(sha(join(ROOT, 'dist/lambda', entry, BUNDLE_FILE)), entry).toBe(sha(join(fromSource, entry, BUNDLE_FILE)));
    }
  });
});

describe('installed into a fresh CDK app', { timeout: 120_000 }, () => {
  it('brings neither tsx nor esbuild, and one aws-cdk-lib', async () => {
    const { stdout } = await sh('npm', ['ls', '--all', '--parseable'], app);
    const installed = stdout.split('\n').filter(Boolean);
    expect(installed.filter((path) => /[/\\](tsx|esbuild|@esbuild[/\\][^/\\]+)$/.test(path))).toEqual([]);
    expect(installed.filter((path) => /[/\\]aws-cdk-lib$/.test(path))).toEqual([join(app, 'node_modules/aws-cdk-lib')]);
  });

  it('installs on this Node.js with no EBADENGINE warning: the local Step Functions interpreter is bundled, not a dependency', () => {
    expect(installOutput).not.toContain('EBADENGINE');
    expect(existsSync(join(app, 'node_modules/aws-local-stepfunctions'))).toBe(false);
    expect(existsSync(join(app, 'node_modules/emc-upgrade/dist/bin/local/step-functions-interpreter.LICENSES.txt'))).toBe(true);
  });

  it('type-checks and synthesizes a stack using the construct from the package root, deploying the packaged bundles', async () => {
    await sh(join(app, 'node_modules/.bin/tsc'), ['-p', '.'], app);
    const { stdout } = await sh(process.execPath, ['build/stack.js'], app);
    expect(stdout.trim()).toBe(`bexar,${(await loadCatalog(DEMO_MIGRATIONS)).steps.length}`);

    const template = JSON.parse(readFileSync(join(app, 'cdk.out/Consumer.template.json'), 'utf8')) as {
      Resources: Record<string, { Type: string; Properties: { Code?: { S3Key?: string } } }>;
    };
    // A file asset is staged as cdk.out/asset.<hash> and uploaded as <hash>.zip.
    const assets = Object.values(template.Resources)
      .filter((resource) => resource.Type === 'AWS::Lambda::Function')
      .map((resource) => join(app, 'cdk.out', `asset.${resource.Properties.Code?.S3Key?.replace(/\.zip$/, '')}`));
    expect(assets).toHaveLength(HANDLER_ENTRIES.length);
    const packagedBundles = join(app, 'node_modules/emc-upgrade/dist/lambda');
    const shipped = HANDLER_ENTRIES.map((entry) => sha(join(packagedBundles, entry, BUNDLE_FILE))).sort();
    expect(assets.map((asset) => sha(join(asset, BUNDLE_FILE))).sort()).toEqual(shipped);
    for (const asset of assets) expect(readdirSync(asset).sort()).toEqual(['emc-catalog.json', BUNDLE_FILE]);
    // The package's directory holds no handler sources, so nothing could have been bundled at this synth.
    expect(existsSync(join(app, 'node_modules/emc-upgrade/dist/lambdas/handlers/start.ts'))).toBe(false);
  });

  it('runs the installed emc on plain node: --version, and plan over the migrations against a real database', async () => {
    const emc = join(app, 'node_modules/.bin/emc');
    expect((await sh(emc, ['--version'], app)).stdout.trim()).toBe(VERSION);

    const { stdout } = await sh(emc, ['plan', '--database-url', db.url, '--migrations', 'migrations', '--json'], app);
    expect(JSON.parse(stdout)).toMatchObject({ target: 'bexar', nextPhase: 'expand' });

    // A broken catalog is refused before the database is reached (exit 9), naming the file.
    writeFileSync(join(app, 'migrations/bexar/expand01_add_visibility.sql'), 'ALTER TABLE;');
    const refused = await sh(emc, ['plan', '--database-url', db.url, '--migrations', 'migrations'], app).catch((error: { code: number; stderr: string }) => error);
    expect(refused).toMatchObject({ code: 9, stderr: expect.stringContaining('expand01_add_visibility.sql') });
  });

  it('runs the installed emc lint, with the squawk binary for this platform installed as a dependency', async () => {
    expect(existsSync(join(app, `node_modules/@squawk-cli/${process.platform}-${process.arch}`))).toBe(true);
    const emc = join(app, 'node_modules/.bin/emc');
    const catalog = join(app, 'lint-migrations');
    mkdirSync(join(catalog, 'r1'), { recursive: true });
    writeFileSync(join(catalog, 'releases.json'), JSON.stringify({ releases: ['r1'] }));
    writeFileSync(join(catalog, 'r1/expand01_add_label.sql'), 'ALTER TABLE gadgets ADD COLUMN label text;\n');

    const clean = await sh(emc, ['lint', '--migrations', catalog], app);
    expect(clean.stdout).toContain('1 step, no lock-safety finding.');

    writeFileSync(join(catalog, 'r1/expand02_index_label.sql'), 'CREATE INDEX gadgets_label_idx ON gadgets (label);\n');
    const refused = await sh(emc, ['lint', '--migrations', catalog], app).catch((error: { code: number; stdout: string }) => error);
    expect(refused).toMatchObject({ code: 12, stdout: expect.stringContaining('r1/expand02_index_label.sql:1: require-concurrent-index-creation') });
  });

  it('runs emc local from the installed package: the packaged demo and bundles, the compiled local runtime', async () => {
    const emc = join(app, 'node_modules/.bin/emc');
    const { stdout } = await sh(emc, ['local', '--database-url', localDb.url, '--rows', '1000', '--json'], app);
    expect(JSON.parse(stdout)).toMatchObject({ succeeded: true, execution: { status: 'SUCCEEDED' } });
    // Nothing written under the installed package: no bundle cache, no cloud assembly (local runs use a temp directory).
    expect(existsSync(join(app, 'node_modules/emc-upgrade/dist/.emc-local'))).toBe(false);
  });
});
