import type pg from 'pg';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ApplicationWriter, ledgerMismatches, type Random, type ReleaseWorkload } from '../../bin/local/application-writer.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './catalog-fixtures.ts';

/**
 * The demo's release `bexar` followed by the fixture release `cactus` (test/fixtures/cactus-release), and the two
 * application releases that write to `images` while cactus is upgraded: bexar (writes `name`) and cactus (writes
 * `title` + `extension`). Each writer keeps a ledger of the value it last wrote to every row it owns, in the final
 * schema's terms, so the rows can be checked one by one once the upgrade is over.
 */

export const CACTUS_FIXTURE = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/cactus-release');

/** A migrations directory with bexar (from demo/migrations) and cactus (from the fixture), in that order. */
export function bexarAndCactus(): string {
  const files: Record<string, string> = {};
  for (const [source, release] of [
    [DEMO_MIGRATIONS, 'bexar'],
    [CACTUS_FIXTURE, 'cactus'],
  ] as const) {
    for (const name of readdirSync(join(source, release)).filter((n) => n.endsWith('.sql'))) {
      files[`${release}/${name}`] = readFileSync(join(source, release, name), 'utf8');
    }
  }
  return writeMigrations(files, ['bexar', 'cactus']);
}

/** The JavaScript twin of the fixture's `images_split_name`. */
export function splitName(name: string): { title: string; extension: string | null } {
  const match = /^(.+)\.([A-Za-z0-9]+)$/s.exec(name);
  return match ? { title: match[1]!, extension: match[2]! } : { title: name, extension: null };
}

/** A row as the cactus release reads it. */
export interface CactusRow {
  title: string;
  extension: string | null;
  visibility: 'public' | 'private';
  owner_id: string;
}

/** What release `release` writes: bexar through `name`, cactus through `title` and `extension`; both `visibility`, `owner_id`. */
function cactusWorkload(release: 'bexar' | 'cactus'): ReleaseWorkload<CactusRow> {
  const withExtension = (title: string, ext: string | null) => (ext ? `${title}.${ext}` : title);
  const extension = (random: Random) => ['png', 'jpg', null][Math.floor(random() * 3)]!;
  return {
    async insert(db, n, random) {
      const visibility = random() < 0.5 ? 'public' : 'private';
      const owner = `${release}-owner-${Math.floor(random() * 100)}`;
      const ext = extension(random);
      const title = `${release}-image-${n}`;
      const result =
        release === 'bexar'
          ? await db.query<{ id: string }>('INSERT INTO images (name, visibility, owner_id) VALUES ($1, $2, $3) RETURNING id', [
              withExtension(title, ext),
              visibility,
              owner,
            ])
          : await db.query<{ id: string }>(
              'INSERT INTO images (title, extension, visibility, owner_id) VALUES ($1, $2, $3, $4) RETURNING id',
              [title, ext, visibility, owner],
            );
      return { id: Number(result.rows[0]!.id), row: { title, extension: ext, visibility, owner_id: owner } };
    },
    async update(db, id, n, random) {
      if (random() < 0.5) {
        const title = `${release}-renamed-${n}`;
        const ext = extension(random);
        if (release === 'bexar') await db.query('UPDATE images SET name = $2 WHERE id = $1', [id, withExtension(title, ext)]);
        else await db.query('UPDATE images SET title = $2, extension = $3 WHERE id = $1', [id, title, ext]);
        return { title, extension: ext };
      }
      const visibility = random() < 0.5 ? 'public' : 'private';
      const owner = `${release}-owner-${Math.floor(random() * 100)}`;
      await db.query('UPDATE images SET visibility = $2, owner_id = $3 WHERE id = $1', [id, visibility, owner]);
      return { visibility, owner_id: owner };
    },
  };
}

/**
 * One application release writing in a loop through its own columns, on its own connection (its
 * `application_name` is what the drain gate looks for). It inserts rows and updates rows it owns, and records the
 * expected final value of each in `ledger`.
 */
export function releaseWriter(
  release: 'bexar' | 'cactus',
  databaseUrl: string,
  applicationName: string,
  owned: readonly number[],
  ledger: Map<number, CactusRow>,
  seed: number,
): ApplicationWriter<CactusRow> {
  return new ApplicationWriter({ databaseUrl, applicationName, workload: cactusWorkload(release), owned, ledger, seed, insertShare: 0.2, pauseMs: 2 });
}

/** Compares every row of `images` (cactus schema) with the ledger: a missing, extra or different row is listed. */
export async function wrongRows(pool: pg.Pool, ledger: ReadonlyMap<number, CactusRow>): Promise<string[]> {
  const result = await pool.query<{ id: string } & CactusRow>(
    `SELECT id::text, title, extension, visibility, owner_id FROM images ORDER BY id`,
  );
  const found = new Map(
    result.rows.map((row) => [Number(row.id), { title: row.title, extension: row.extension, visibility: row.visibility, owner_id: row.owner_id }]),
  );
  const extra = [...found].filter(([id]) => !ledger.has(id)).map(([id, got]) => `row ${id} is not in any ledger: ${JSON.stringify(got)}`);
  return [...extra, ...ledgerMismatches(ledger, found)];
}
