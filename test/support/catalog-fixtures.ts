import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

export { DEMO_MIGRATIONS } from '../../bin/local/demo-database.ts';

/**
 * Writes a migrations directory from a map of relative paths to contents (text, or bytes
 * for encodings other than UTF-8) and returns its path. `releases.json`
 * is written from `releases` unless the files map gives one.
 */
export function writeMigrations(files: Record<string, string | Uint8Array>, releases?: string[]): string {
  const directory = mkdtempSync(join(tmpdir(), 'emc-migrations-'));
  const all: Record<string, string | Uint8Array> = { ...files };
  if (!('releases.json' in all)) {
    const inferred = releases ?? [...new Set(Object.keys(files).map((p) => p.split('/')[0]!))];
    all['releases.json'] = JSON.stringify({ releases: inferred });
  }
  for (const [path, content] of Object.entries(all)) {
    const target = join(directory, path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, content);
  }
  return directory;
}
