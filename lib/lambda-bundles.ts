import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const HANDLERS = join(ROOT, 'lambdas/handlers');

/** The handler files of lambdas/handlers, one Lambda function each. */
export const HANDLER_ENTRIES = ['plan', 'expand', 'migrate', 'check-drain', 'contract', 'finish', 'record-failure'] as const;
export type HandlerEntry = (typeof HANDLER_ENTRIES)[number];

/** The bundle's file inside each entry's directory; the Lambda handler is `index.handler`. */
export const BUNDLE_FILE = 'index.mjs';

/**
 * The one set of esbuild options every Lambda bundle is built with: minified ESM for the Node.js 24 runtime. The AWS
 * SDK (and its @smithy parts) ships with the runtime; node-postgres and the SQL parser serve local runs only.
 */
export const LAMBDA_BUNDLE_OPTIONS = {
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node24',
  minify: true,
  // Class names survive minification (stack traces stay readable); the typed errors' `name`s are literals anyway.
  keepNames: true,
  sourcemap: false,
  mainFields: ['module', 'main'],
  external: ['@aws-sdk/*', '@smithy/*', 'pg', 'pg-native', 'libpg-query'],
  banner: { js: "import { createRequire } from 'node:module'; const require = createRequire(import.meta.url);" },
  logLevel: 'warning',
} as const satisfies BuildOptions;

/**
 * The directory holding `<entry>/index.mjs` for every handler, built from this repository's sources with
 * `LAMBDA_BUNDLE_OPTIONS`. Built once per content of the sources (a hash of lambdas/, the lockfile and the options
 * names the directory), so repeated synths reuse it; a build goes to a temporary directory first and is renamed into
 * place, so concurrent synths never see half a bundle.
 */
export function lambdaBundlesFromSource(cacheRoot = join(ROOT, '.emc-local/lambda-bundles')): string {
  const directory = join(cacheRoot, sourceHash());
  if (existsSync(join(directory, 'complete'))) return directory;
  // Loaded only here: constructs are synchronous, and a synth that finds the bundles built needs no esbuild.
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  mkdirSync(cacheRoot, { recursive: true });
  const building = `${directory}.building-${process.pid}-${Date.now()}`;
  esbuild.buildSync({
    ...LAMBDA_BUNDLE_OPTIONS,
    entryPoints: Object.fromEntries(HANDLER_ENTRIES.map((entry) => [`${entry}/index`, join(HANDLERS, `${entry}.ts`)])),
    outdir: building,
    outExtension: { '.js': '.mjs' },
  });
  mkdirSync(join(building, 'complete'));
  try {
    renameSync(building, directory);
  } catch (error) {
    // Another process finished the same build first: its bundles are the same bytes.
    rmSync(building, { recursive: true, force: true });
    if (!existsSync(join(directory, 'complete'))) throw error;
  }
  return directory;
}

function sourceHash(): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(LAMBDA_BUNDLE_OPTIONS));
  const files = [join(ROOT, 'package-lock.json'), ...listFiles(join(ROOT, 'lambdas'))].sort();
  for (const file of files) hash.update(relative(ROOT, file)).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex').slice(0, 20);
}

function listFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listFiles(join(directory, entry.name)) : [join(directory, entry.name)],
  );
}
