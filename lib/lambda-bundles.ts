import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions } from 'esbuild';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

/** The handler files of lambdas/handlers, one Lambda function each. */
export const HANDLER_ENTRIES = ['start', 'expand', 'migrate', 'check-drain', 'contract', 'finish', 'record-failure'] as const;
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

/** Where the package's build puts the bundles, relative to the directory holding lib/ (dist/ once built). */
export const PACKAGED_BUNDLES = 'lambda';

/**
 * The directory of the bundles the construct deploys, chosen by what sits beside this module: inside this repository
 * (lambdas/handlers/*.ts next to lib/) they are built from the sources; in the installed package (compiled
 * JavaScript only) they are the ones `npm run build` shipped in `lambda/`, so a consumer's synth needs no esbuild
 * and deploys the bytes this repository tested. Both are built by `buildLambdaBundles` with the same options.
 */
export function lambdaBundles(root = ROOT): string {
  if (HANDLER_ENTRIES.every((entry) => existsSync(join(root, 'lambdas/handlers', `${entry}.ts`)))) {
    return lambdaBundlesFromSource(join(root, '.emc-local/lambda-bundles'), root);
  }
  const packaged = join(root, PACKAGED_BUNDLES);
  const missing = HANDLER_ENTRIES.filter((entry) => !existsSync(join(packaged, entry, BUNDLE_FILE)));
  if (missing.length > 0) {
    throw new Error(
      `emc-upgrade: no Lambda bundles: neither the handler sources (${join(root, 'lambdas/handlers')}) nor the packaged bundles (${packaged}: missing ${missing.join(', ')}) are there; reinstall the package, or run \`npm run build\` in its repository.`,
    );
  }
  return packaged;
}

/** Builds `<entry>/index.mjs` for every handler of `root`'s lambdas/handlers into `outdir`, with `LAMBDA_BUNDLE_OPTIONS`. */
export function buildLambdaBundles(outdir: string, root = ROOT): void {
  // Loaded only here: constructs are synchronous, and a synth that finds the bundles built needs no esbuild.
  const esbuild = createRequire(import.meta.url)('esbuild') as typeof import('esbuild');
  esbuild.buildSync({
    ...LAMBDA_BUNDLE_OPTIONS,
    entryPoints: Object.fromEntries(
      HANDLER_ENTRIES.map((entry) => [`${entry}/index`, join(root, 'lambdas/handlers', `${entry}.ts`)]),
    ),
    outdir,
    outExtension: { '.js': '.mjs' },
  });
}

/**
 * The directory holding `<entry>/index.mjs` for every handler, built from this repository's sources with
 * `buildLambdaBundles`. Built once per content of the sources (a hash of lambdas/, the lockfile and the options
 * names the directory), so repeated synths reuse it; a build goes to a temporary directory first and is renamed into
 * place, so concurrent synths never see half a bundle.
 */
export function lambdaBundlesFromSource(cacheRoot = join(ROOT, '.emc-local/lambda-bundles'), root = ROOT): string {
  const directory = join(cacheRoot, sourceHash(root));
  if (existsSync(join(directory, 'complete'))) return directory;
  mkdirSync(cacheRoot, { recursive: true });
  const building = `${directory}.building-${process.pid}-${Date.now()}`;
  buildLambdaBundles(building, root);
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

function sourceHash(root: string): string {
  const hash = createHash('sha256');
  hash.update(JSON.stringify(LAMBDA_BUNDLE_OPTIONS));
  const files = [join(root, 'package-lock.json'), ...listFiles(join(root, 'lambdas'))].sort();
  for (const file of files) hash.update(relative(root, file)).update('\0').update(readFileSync(file)).update('\0');
  return hash.digest('hex').slice(0, 20);
}

function listFiles(directory: string): string[] {
  return readdirSync(directory, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? listFiles(join(directory, entry.name)) : [join(directory, entry.name)],
  );
}
