import pg from 'pg';
import { isDeepStrictEqual } from 'node:util';
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
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

export interface WriterReport {
  readonly release: string;
  readonly attempted: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly inserts: number;
  readonly errors: readonly string[];
  /** Writes that succeeded while each workflow task ran (set by the caller through `phase`). */
  readonly byPhase: Readonly<Record<string, number>>;
}

/** Small deterministic PRNG (mulberry32): a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * One application release writing in a loop through its own columns, on its own connection (its
 * `application_name` is what the drain gate looks for). It inserts rows and updates rows it owns, and records the
 * expected final value of each in `ledger`.
 */
export class ReleaseWriter {
  private readonly pool: pg.Pool;
  private readonly next: () => number;
  private readonly own: number[];
  private attempted = 0;
  private failed = 0;
  private inserts = 0;
  private readonly errors: string[] = [];
  private readonly byPhase: Record<string, number> = {};
  private running: Promise<void> | undefined;
  private stopping = false;
  /** Whatever the workflow is doing now; successful writes are counted per phase. */
  phase = 'before';
  /** Resolved when the writer has stopped and disconnected (its release is drained). */
  stoppedAt: number | undefined;

  constructor(
    readonly release: 'bexar' | 'cactus',
    databaseUrl: string,
    readonly applicationName: string,
    owned: number[],
    private readonly ledger: Map<number, CactusRow>,
    seed: number,
  ) {
    this.pool = new pg.Pool({ connectionString: databaseUrl, max: 1, application_name: applicationName });
    this.pool.on('error', () => {});
    this.own = [...owned];
    this.next = random(seed);
  }

  start(): void {
    this.running ??= this.loop();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    await this.running;
    if (this.stoppedAt === undefined) {
      await this.pool.end();
      this.stoppedAt = Date.now();
    }
  }

  report(): WriterReport {
    return {
      release: this.release,
      attempted: this.attempted,
      succeeded: this.attempted - this.failed,
      failed: this.failed,
      inserts: this.inserts,
      errors: this.errors,
      byPhase: { ...this.byPhase },
    };
  }

  private async loop(): Promise<void> {
    for (let n = 1; !this.stopping; n++) {
      const pick = this.next();
      const visibility = this.next() < 0.5 ? 'public' : 'private';
      const owner = `${this.release}-owner-${Math.floor(this.next() * 100)}`;
      const ext = ['png', 'jpg', null][Math.floor(this.next() * 3)]!;
      const id = this.own[Math.floor(this.next() * this.own.length)]!;
      this.attempted++;
      try {
        if (pick < 0.2 || this.own.length === 0) await this.insert(n, visibility, owner, ext);
        else if (pick < 0.6) await this.rename(id, n, ext);
        else await this.reassign(id, visibility, owner);
        this.byPhase[this.phase] = (this.byPhase[this.phase] ?? 0) + 1;
      } catch (error) {
        this.failed++;
        if (this.errors.length < 5) this.errors.push(`${this.phase}: ${(error as Error).message}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
  }

  private async insert(n: number, visibility: CactusRow['visibility'], owner: string, ext: string | null): Promise<void> {
    const title = `${this.release}-image-${n}`;
    const result =
      this.release === 'bexar'
        ? await this.pool.query<{ id: string }>(
            'INSERT INTO images (name, visibility, owner_id) VALUES ($1, $2, $3) RETURNING id',
            [ext ? `${title}.${ext}` : title, visibility, owner],
          )
        : await this.pool.query<{ id: string }>(
            'INSERT INTO images (title, extension, visibility, owner_id) VALUES ($1, $2, $3, $4) RETURNING id',
            [title, ext, visibility, owner],
          );
    const id = Number(result.rows[0]!.id);
    this.own.push(id);
    this.inserts++;
    this.ledger.set(id, { title, extension: ext, visibility, owner_id: owner });
  }

  private async rename(id: number, n: number, ext: string | null): Promise<void> {
    const title = `${this.release}-renamed-${n}`;
    if (this.release === 'bexar') {
      await this.pool.query('UPDATE images SET name = $2 WHERE id = $1', [id, ext ? `${title}.${ext}` : title]);
    } else {
      await this.pool.query('UPDATE images SET title = $2, extension = $3 WHERE id = $1', [id, title, ext]);
    }
    const row = this.ledger.get(id)!;
    row.title = title;
    row.extension = ext;
  }

  private async reassign(id: number, visibility: CactusRow['visibility'], owner: string): Promise<void> {
    await this.pool.query('UPDATE images SET visibility = $2, owner_id = $3 WHERE id = $1', [id, visibility, owner]);
    const row = this.ledger.get(id)!;
    row.visibility = visibility;
    row.owner_id = owner;
  }
}

/** Compares every row of `images` (cactus schema) with the ledger: a missing, extra or different row is listed. */
export async function wrongRows(pool: pg.Pool, ledger: ReadonlyMap<number, CactusRow>): Promise<string[]> {
  const result = await pool.query<{ id: string } & CactusRow>(
    `SELECT id::text, title, extension, visibility, owner_id FROM images ORDER BY id`,
  );
  const wrong: string[] = [];
  const seen = new Set<number>();
  for (const row of result.rows) {
    const id = Number(row.id);
    seen.add(id);
    const want = ledger.get(id);
    const got: CactusRow = { title: row.title, extension: row.extension, visibility: row.visibility, owner_id: row.owner_id };
    if (!want) wrong.push(`row ${id} is not in any ledger: ${JSON.stringify(got)}`);
    else if (!isDeepStrictEqual(got, want)) wrong.push(`row ${id}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
  for (const id of ledger.keys()) if (!seen.has(id)) wrong.push(`row ${id} is missing`);
  return wrong;
}
