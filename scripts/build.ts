// `npm run build`, after `tsc -p tsconfig.build.json` compiled lib/, lambdas/ and bin/ into dist/: the Lambda bundles,
// built once with the construct's options by the function the in-repository synth uses (so both give the same
// bytes), and the files the compiled CLI reads beside its modules (the local Lambda runtime, the demo).
import { chmodSync, cpSync, existsSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildLambdaBundles, PACKAGED_BUNDLES } from '../lib/lambda-bundles.ts';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const DIST = join(ROOT, 'dist');

if (!existsSync(join(DIST, 'lib/index.js'))) throw new Error(`${DIST}: run tsc -p tsconfig.build.json first`);
rmSync(join(DIST, PACKAGED_BUNDLES), { recursive: true, force: true });
buildLambdaBundles(join(DIST, PACKAGED_BUNDLES));
cpSync(join(ROOT, 'bin/local/lambda-runtime.mjs'), join(DIST, 'bin/local/lambda-runtime.mjs'));
// bin/local/demo-database.ts finds the demo two levels above its module: dist/demo once compiled.
rmSync(join(DIST, 'demo'), { recursive: true, force: true });
cpSync(join(ROOT, 'demo'), join(DIST, 'demo'), { recursive: true });
chmodSync(join(DIST, 'bin/emc.js'), 0o755);
