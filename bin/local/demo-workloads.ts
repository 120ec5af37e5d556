import pg from 'pg';
import { ApplicationWriter, ledgerMismatches, type ReleaseWorkload } from './application-writer.ts';

/**
 * The demo application's two releases writing to `images` while the upgrade to bexar runs: release n-1 ("old")
 * writes through `is_public` and `owner`, release n ("new") through `visibility` and `owner_id`. Each connects with
 * its own `application_name`, so the drain gate's database-session source sees the old one go.
 *
 * Each workload updates only rows it inserted, and remembers what it last wrote to each; `verify` then checks every
 * one of those rows in the new columns: a row whose value is not what was last written is a lost write.
 */
export const OLD_RELEASE_APPLICATION_NAME = 'demo-app-old';
export const NEW_RELEASE_APPLICATION_NAME = 'demo-app-new';

/** A demo row as release n reads it. */
export interface DemoRow {
  readonly visibility: 'public' | 'private';
  readonly owner: string;
}

function nextValue(release: 'old' | 'new', n: number, random: () => number): DemoRow {
  return { visibility: random() < 0.5 ? 'public' : 'private', owner: `${release}-tenant-${n % 50}` };
}

/** An update changes one column or both: a trigger must carry a change of one column without touching the other. */
function changed(random: () => number): keyof DemoRow | 'both' {
  const pick = random();
  return pick < 1 / 3 ? 'visibility' : pick < 2 / 3 ? 'owner' : 'both';
}

/** Release n-1: `is_public` and `owner` (expand's triggers carry them to the new columns). */
export const OLD_RELEASE_WORKLOAD: ReleaseWorkload<DemoRow> = {
  async insert(db, n, random) {
    const row = nextValue('old', n, random);
    const result = await db.query<{ id: string }>('INSERT INTO images (name, owner, is_public) VALUES ($1, $2, $3) RETURNING id', [
      `old-image-${n}`,
      row.owner,
      row.visibility === 'public',
    ]);
    return { id: Number(result.rows[0]!.id), row };
  },
  async update(db, id, n, random) {
    const row = nextValue('old', n, random);
    const which = changed(random);
    if (which === 'visibility') await db.query('UPDATE images SET is_public = $2 WHERE id = $1', [id, row.visibility === 'public']);
    else if (which === 'owner') await db.query('UPDATE images SET owner = $2 WHERE id = $1', [id, row.owner]);
    else await db.query('UPDATE images SET is_public = $2, owner = $3 WHERE id = $1', [id, row.visibility === 'public', row.owner]);
    return which === 'both' ? row : { [which]: row[which] };
  },
};

/** Release n: `visibility` and `owner_id`. */
export const NEW_RELEASE_WORKLOAD: ReleaseWorkload<DemoRow> = {
  async insert(db, n, random) {
    const row = nextValue('new', n, random);
    const result = await db.query<{ id: string }>('INSERT INTO images (name, owner_id, visibility) VALUES ($1, $2, $3) RETURNING id', [
      `new-image-${n}`,
      row.owner,
      row.visibility,
    ]);
    return { id: Number(result.rows[0]!.id), row };
  },
  async update(db, id, n, random) {
    const row = nextValue('new', n, random);
    const which = changed(random);
    if (which === 'visibility') await db.query('UPDATE images SET visibility = $2 WHERE id = $1', [id, row.visibility]);
    else if (which === 'owner') await db.query('UPDATE images SET owner_id = $2 WHERE id = $1', [id, row.owner]);
    else await db.query('UPDATE images SET visibility = $2, owner_id = $3 WHERE id = $1', [id, row.visibility, row.owner]);
    return which === 'both' ? row : { [which]: row[which] };
  },
};

export interface WorkloadReport {
  readonly release: 'old' | 'new';
  readonly attempted: number;
  readonly failed: number;
  readonly lost: number;
  /** The first few failure messages, for the reader. */
  readonly errors: readonly string[];
}

/** One of the demo's releases writing, and the check of what it wrote once the upgrade is over. */
export class DemoWorkload {
  private readonly ledger = new Map<number, DemoRow>();
  private readonly writer: ApplicationWriter<DemoRow>;

  constructor(
    readonly release: 'old' | 'new',
    databaseUrl: string,
    pauseMs = 5,
  ) {
    this.writer = new ApplicationWriter({
      databaseUrl,
      applicationName: release === 'old' ? OLD_RELEASE_APPLICATION_NAME : NEW_RELEASE_APPLICATION_NAME,
      workload: release === 'old' ? OLD_RELEASE_WORKLOAD : NEW_RELEASE_WORKLOAD,
      ledger: this.ledger,
      pauseMs,
    });
  }

  start(): void {
    this.writer.start();
  }

  /** Stops writing and disconnects: for the old release, this is its tasks draining. */
  async stop(): Promise<void> {
    await this.writer.stop();
  }

  /** Checks every row this workload wrote, in the new release's columns, once the upgrade is over. */
  async verify(databaseUrl: string): Promise<WorkloadReport> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const rows = await client.query<{ id: string; visibility: DemoRow['visibility']; owner_id: string }>(
        'SELECT id::text, visibility, owner_id FROM images WHERE id = ANY($1::bigint[])',
        [[...this.ledger.keys()]],
      );
      const found = new Map(rows.rows.map((r) => [Number(r.id), { visibility: r.visibility, owner: r.owner_id }]));
      const { attempted, failed, errors } = this.writer.report();
      return { release: this.release, attempted, failed, lost: ledgerMismatches(this.ledger, found).length, errors };
    } finally {
      await client.end();
    }
  }
}
