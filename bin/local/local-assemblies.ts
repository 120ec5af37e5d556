import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = dirname(fileURLToPath(import.meta.url));

let root: string | undefined;

/**
 * A new directory for one local deployment's cloud assembly (template and staged assets), inside this process's
 * temporary directory, which is removed when the process exits. Never under the package: an installed package's
 * directory is not the user's to write (and may be read-only).
 *
 * The staged bundles import the AWS SDK, which the Lambda runtime provides and the bundles leave out: the temporary
 * directory's `node_modules` links each `@aws-sdk/*` package this package depends on, as this module resolves it, so
 * a bundle run from there finds the same SDK an in-package directory would.
 */
export function newAssemblyDirectory(): string {
  root ??= createRoot();
  return mkdtempSync(join(root, 'cdk.out-'));
}

function createRoot(): string {
  const directory = mkdtempSync(join(tmpdir(), 'emc-local-'));
  process.once('exit', () => rmSync(directory, { recursive: true, force: true }));
  const resolve = createRequire(import.meta.url).resolve;
  for (const name of awsSdkDependencies()) {
    const link = join(directory, 'node_modules', name);
    mkdirSync(dirname(link), { recursive: true });
    symlinkSync(dirname(resolve(`${name}/package.json`)), link, 'dir');
  }
  return directory;
}

/** The `@aws-sdk/*` dependencies of the package.json nearest above this module (the repository's, or the installed package's). */
function awsSdkDependencies(): string[] {
  for (let directory = HERE; ; directory = dirname(directory)) {
    const file = join(directory, 'package.json');
    if (existsSync(file)) {
      const { dependencies = {} } = JSON.parse(readFileSync(file, 'utf8')) as { dependencies?: Record<string, string> };
      return Object.keys(dependencies).filter((name) => name.startsWith('@aws-sdk/'));
    }
    if (dirname(directory) === directory) throw new Error(`no package.json above ${HERE}`);
  }
}
