import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The `version` of the package this module belongs to, read at run time from the nearest package.json above it:
 * the repository's from bin/cli/, the installed package's from dist/bin/cli/ (dist/ holds none).
 */
export function packageVersion(from = dirname(fileURLToPath(import.meta.url))): string {
  for (let directory = from; ; directory = dirname(directory)) {
    const file = join(directory, 'package.json');
    if (existsSync(file)) {
      const version = (JSON.parse(readFileSync(file, 'utf8')) as { version?: unknown }).version;
      if (typeof version !== 'string') throw new Error(`${file}: no "version"`);
      return version;
    }
    if (dirname(directory) === directory) throw new Error(`no package.json above ${from}`);
  }
}
