import * as esbuild from 'esbuild';
import { execFile } from 'node:child_process';
import { mkdirSync, rmSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { isBuiltin } from 'node:module';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { DEMO_MIGRATIONS } from '../../bin/local/demo-database.ts';
import { compileCatalog } from '../../lambdas/core/catalog/compiled-catalog.ts';
import type { DrainSourceConfig } from '../../lambdas/core/drain/drain-gate.ts';
import { loadCatalog } from '../../lambdas/core/index.ts';
import { lambdaEnvironmentVariables } from '../../lambdas/handlers/commons/environment.ts';
import { HANDLER_ENTRIES, LAMBDA_BUNDLE_OPTIONS } from '../../lib/lambda-bundles.ts';
import { median } from '../lib/stats.ts';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const HANDLERS = join(ROOT, 'lambdas/handlers');
/** Inside the project, so that the externals (`@aws-sdk/*`) resolve from its node_modules as the runtime provides them. */
export const BUNDLE_DIR = join(ROOT, 'bench/.out/bundles');
const CATALOG_FILE_NAME = 'emc-catalog.json';
export const BUNDLE_TARGET_BYTES = 300 * 1024;


/** What the Lambda Node.js runtime provides besides Node's own modules. */
const RUNTIME_PROVIDED = /^@(aws-sdk|smithy)\//;

export interface BundleFigure {
  readonly handler: string;
  readonly bytes: number;
  readonly gzipBytes: number;
  /** The biggest contributors to the minified output: npm packages by name, the project's own code as "lambdas/". */
  readonly largestInputs: readonly { readonly name: string; readonly bytes: number }[];
  /** Packages the bundle imports at run time (not bundled). */
  readonly externals: readonly string[];
  /** Of those, the ones the Lambda runtime does not provide: the function would fail to start. */
  readonly missingInLambda: readonly string[];
  /**
   * Median of `runs`: time of `await import(bundle)` in a fresh node process, and process start to handler ready;
   * NaN for a handler the size preset does not time.
   */
  readonly importMs: number;
  readonly readyMs: number;
  readonly runs: number;
}

export interface BundleFigures {
  readonly esbuildVersion: string;
  readonly nodeVersion: string;
  readonly targetBytes: number;
  readonly bundles: readonly BundleFigure[];
  /** Each run-time import alone, in a fresh process: how much of the initialisation is the runtime's AWS SDK. */
  readonly externalImports: readonly { readonly name: string; readonly importMs: number }[];
  readonly allWithinTarget: boolean;
}

const run = promisify(execFile);

/** The module each process imports; prints how long the import took and how long since the process started. */
const CHILD = `
const started = performance.now();
const mod = await import(process.env.BENCH_IMPORT);
const ready = performance.now();
if (process.env.BENCH_EXPECT_HANDLER && typeof mod.handler !== 'function') throw new Error('the bundle exports no handler function');
console.log(JSON.stringify({ importMs: ready - started, readyMs: ready }));
`;

/** Median import time and process-start-to-ready time of `specifier` over `runs` fresh node processes in `cwd`. */
async function timeImport(
  specifier: string,
  cwd: string,
  env: Record<string, string>,
  runs: number,
  expectHandler: boolean,
): Promise<{ importMs: number; readyMs: number }> {
  const timings: { importMs: number; readyMs: number }[] = [];
  for (let i = 0; i < runs; i++) {
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', CHILD], {
      cwd,
      env: { ...env, BENCH_IMPORT: specifier, ...(expectHandler ? { BENCH_EXPECT_HANDLER: '1' } : {}) },
    });
    timings.push(JSON.parse(stdout.trim().split('\n').at(-1)!) as { importMs: number; readyMs: number });
  }
  return { importMs: median(timings.map((t) => t.importMs)), readyMs: median(timings.map((t) => t.readyMs)) };
}

/**
 * Section 5: each Lambda entry bundled as the construct bundles it, with the compiled demo catalog beside it, then
 * imported `runs` times in a fresh node process with the environment the construct sets.
 */
export async function measureBundles(
  runs: number,
  timed: 'all' | readonly string[],
  log: (line: string) => void,
): Promise<BundleFigures> {
  const entries = [...HANDLER_ENTRIES].sort().map((entry) => `${entry}.ts`);
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  const catalogJson = JSON.stringify(compileCatalog(await loadCatalog(DEMO_MIGRATIONS)));
  const drain: DrainSourceConfig = { kind: 'database-sessions', applicationNamePattern: 'demo-app-old%' };
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    HOME: process.env.HOME ?? '/tmp',
    AWS_REGION: 'us-east-1',
    AWS_DEFAULT_REGION: 'us-east-1',
    POWERTOOLS_SERVICE_NAME: 'emc-upgrade',
    ...lambdaEnvironmentVariables({
      clusterArn: 'arn:aws:rds:us-east-1:123456789012:cluster:bench',
      secretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:bench-AbCdEf',
      databaseName: 'postgres',
      catalogFile: CATALOG_FILE_NAME,
      settings: {},
      drainSource: drain,
      drainTimeoutSeconds: 3600,
    }),
  };
  const bundles: BundleFigure[] = [];
  for (const entry of entries) {
    const handler = entry.replace(/\.ts$/, '');
    const outdir = join(BUNDLE_DIR, handler);
    mkdirSync(outdir, { recursive: true });
    const outfile = join(outdir, 'index.mjs');
    const built = await esbuild.build({
      // The one set of options the deployed bundles are built with (lib/lambda-bundles.ts).
      ...LAMBDA_BUNDLE_OPTIONS,
      mainFields: [...LAMBDA_BUNDLE_OPTIONS.mainFields],
      external: [...LAMBDA_BUNDLE_OPTIONS.external],
      entryPoints: [join(HANDLERS, entry)],
      outfile,
      metafile: true,
      logLevel: 'error',
      absWorkingDir: ROOT,
    });
    writeFileSync(join(outdir, CATALOG_FILE_NAME), catalogJson);
    const output = Object.values(built.metafile.outputs)[0]!;
    const contributions = new Map<string, number>();
    for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
      const name = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(input)?.[1] ?? (input.startsWith('lambdas/') ? 'lambdas/' : input);
      contributions.set(name, (contributions.get(name) ?? 0) + bytesInOutput);
    }
    const externals = [
      ...new Set(output.imports.filter((i) => i.external && !isBuiltin(i.path)).map((i) => i.path)),
    ].sort();
    const content = readFileSync(outfile);
    const timing =
      timed === 'all' || timed.includes(handler)
        ? await timeImport(pathToFileURL(outfile).href, outdir, env, runs, true)
        : { importMs: Number.NaN, readyMs: Number.NaN };
    const figure: BundleFigure = {
      handler,
      bytes: content.length,
      gzipBytes: gzipSync(content, { level: 9 }).length,
      largestInputs: [...contributions]
        .sort((a, b) => b[1] - a[1])
        .slice(0, 3)
        .map(([name, size]) => ({ name, bytes: size })),
      externals,
      missingInLambda: externals.filter((e) => !RUNTIME_PROVIDED.test(e)),
      importMs: timing.importMs,
      readyMs: timing.readyMs,
      runs: Number.isNaN(timing.importMs) ? 0 : runs,
    };
    bundles.push(figure);
    log(
      `  ${handler}: ${(figure.bytes / 1024).toFixed(1)} KiB` +
        (figure.runs ? `, import ${figure.importMs.toFixed(1)} ms (median of ${runs})` : ''),
    );
  }
  const externalImports: { name: string; importMs: number }[] = [];
  for (const name of [...new Set(bundles.flatMap((b) => b.externals))].sort()) {
    const { importMs } = await timeImport(name, BUNDLE_DIR, env, runs, false);
    externalImports.push({ name, importMs });
    log(`  ${name} alone: import ${importMs.toFixed(1)} ms`);
  }
  return {
    esbuildVersion: esbuild.version,
    nodeVersion: process.version,
    targetBytes: BUNDLE_TARGET_BYTES,
    bundles,
    externalImports,
    allWithinTarget: bundles.every((b) => b.bytes <= BUNDLE_TARGET_BYTES),
  };
}
