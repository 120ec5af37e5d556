// `npm run build`, after `tsc -p tsconfig.build.json` compiled lib/, lambdas/ and bin/ into dist/: the Lambda bundles,
// built once with the construct's options by the function the in-repository synth uses (so both give the same
// bytes), the local Step Functions interpreter bundled in place of its compiled module, and the files the compiled CLI
// reads beside its modules (the local Lambda runtime, the demo).
import { buildSync } from 'esbuild';
import { chmodSync, cpSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLambdaBundles, LAMBDA_BUNDLE_OPTIONS, PACKAGED_BUNDLES } from '../lib/lambda-bundles.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');

if (!existsSync(join(DIST, 'lib/index.js'))) throw new Error(`${DIST}: run tsc -p tsconfig.build.json first`);
rmSync(join(DIST, PACKAGED_BUNDLES), { recursive: true, force: true });
buildLambdaBundles(join(DIST, PACKAGED_BUNDLES));
// aws-local-stepfunctions and its own dependencies inlined, their licences beside them: the installed package depends
// on neither it nor its Node >= 22 `engines` (bin/local/step-functions-interpreter.ts says why).
const interpreter = buildSync({
  entryPoints: [join(ROOT, 'bin/local/step-functions-interpreter.ts')],
  outfile: join(DIST, 'bin/local/step-functions-interpreter.js'),
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  minify: true,
  keepNames: true,
  metafile: true,
  absWorkingDir: ROOT,
  banner: LAMBDA_BUNDLE_OPTIONS.banner,
  logLevel: 'warning',
});
writeFileSync(join(DIST, 'bin/local/step-functions-interpreter.LICENSES.txt'), bundledLicences(Object.keys(interpreter.metafile.inputs)));
cpSync(join(ROOT, 'bin/local/lambda-runtime.mjs'), join(DIST, 'bin/local/lambda-runtime.mjs'));
// bin/local/demo-database.ts finds the demo two levels above its module: dist/demo once compiled.
rmSync(join(DIST, 'demo'), { recursive: true, force: true });
cpSync(join(ROOT, 'demo'), join(DIST, 'demo'), { recursive: true });
chmodSync(join(DIST, 'bin/emc.js'), 0o755);

/** The licence texts of the npm packages a bundle's inputs (paths relative to ROOT) come from, each text once. */
function bundledLicences(inputs: readonly string[]): string {
  const packages = new Set(inputs.flatMap((input) => /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(input)?.[1] ?? []));
  const byText = new Map<string, string[]>();
  for (const directory of [...packages].sort()) {
    const { name, version, license } = JSON.parse(readFileSync(join(ROOT, directory, 'package.json'), 'utf8')) as Record<string, string>;
    const file = readdirSync(join(ROOT, directory)).find((entry) => /^licen[cs]e/i.test(entry));
    const text = file ? readFileSync(join(ROOT, directory, file), 'utf8').trim() : `${license} (the package ships no licence file)`;
    byText.set(text, [...(byText.get(text) ?? []), `${name}@${version}`]);
  }
  return [...byText].map(([text, names]) => `${names.join('\n')}\n\n${text}\n`).join('\n----------------------------------------\n\n');
}
