import pg from 'pg';

/**
 * The demo application's two releases writing to `images` while the upgrade runs: release n-1 ("old") writes
 * through `is_public` and `owner`, release n ("new") through `visibility` and `owner_id`. Each connects with its
 * own `application_name`, so the drain gate's database-session source sees the old one go.
 *
 * Each workload updates only rows it inserted, and remembers what it last wrote to each; `verify` then checks every
 * one of those rows in the new columns: a row whose value is not what was last written is a lost write.
 */
export const OLD_RELEASE_APPLICATION_NAME = 'demo-app-old';
export const NEW_RELEASE_APPLICATION_NAME = 'demo-app-new';

export interface WorkloadReport {
  readonly release: 'old' | 'new';
  readonly attempted: number;
  readonly failed: number;
  readonly lost: number;
  /** The first few failure messages, for the reader. */
  readonly errors: readonly string[];
}

interface Expected {
  visibility: 'public' | 'private';
  owner: string;
}

export class DemoWorkload {
  private readonly pool: pg.Pool;
  private readonly expected = new Map<string, Expected>();
  private attempted = 0;
  private failed = 0;
  private readonly errors: string[] = [];
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private stopping = false;

  constructor(
    readonly release: 'old' | 'new',
    databaseUrl: string,
    private readonly pauseMs = 5,
  ) {
    this.pool = new pg.Pool({
      connectionString: databaseUrl,
      max: 1,
      application_name: release === 'old' ? OLD_RELEASE_APPLICATION_NAME : NEW_RELEASE_APPLICATION_NAME,
    });
    this.pool.on('error', () => {});
  }

  start(): void {
    this.running ??= this.loop();
  }

  /** Stops writing and disconnects: for the old release, this is its tasks draining. */
  stop(): Promise<void> {
    this.stopping = true;
    this.stopped ??= (async () => {
      await this.running;
      await this.pool.end();
    })();
    return this.stopped;
  }

  private async loop(): Promise<void> {
    let n = 0;
    while (!this.stopping) {
      n++;
      const own = [...this.expected.keys()];
      const update = own.length > 0 && n % 3 !== 0;
      const id = update ? own[Math.floor(Math.random() * own.length)]! : undefined;
      const next: Expected = {
        visibility: Math.random() < 0.5 ? 'public' : 'private',
        owner: `${this.release}-tenant-${n % 50}`,
      };
      this.attempted++;
      try {
        const written = id === undefined ? await this.insert(n, next) : await this.update(id, next);
        this.expected.set(written, next);
      } catch (error) {
        this.failed++;
        if (this.errors.length < 5) this.errors.push((error as Error).message);
      }
      await new Promise((resolve) => setTimeout(resolve, this.pauseMs));
    }
  }

  private async insert(n: number, value: Expected): Promise<string> {
    const result =
      this.release === 'old'
        ? await this.pool.query<{ id: string }>(
            'INSERT INTO images (name, owner, is_public) VALUES ($1, $2, $3) RETURNING id',
            [`old-image-${n}`, value.owner, value.visibility === 'public'],
          )
        : await this.pool.query<{ id: string }>(
            'INSERT INTO images (name, owner_id, visibility) VALUES ($1, $2, $3) RETURNING id',
            [`new-image-${n}`, value.owner, value.visibility],
          );
    return result.rows[0]!.id;
  }

  private async update(id: string, value: Expected): Promise<string> {
    if (this.release === 'old') {
      await this.pool.query('UPDATE images SET is_public = $2, owner = $3 WHERE id = $1', [id, value.visibility === 'public', value.owner]);
    } else {
      await this.pool.query('UPDATE images SET visibility = $2, owner_id = $3 WHERE id = $1', [id, value.visibility, value.owner]);
    }
    return id;
  }

  /** Checks every row this workload wrote, in the new release's columns, once the upgrade is over. */
  async verify(databaseUrl: string): Promise<WorkloadReport> {
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    try {
      const ids = [...this.expected.keys()];
      const rows = await client.query<{ id: string; visibility: string | null; owner_id: string | null }>(
        'SELECT id::text, visibility, owner_id FROM images WHERE id = ANY($1::bigint[])',
        [ids],
      );
      const found = new Map(rows.rows.map((r) => [r.id, r]));
      let lost = 0;
      for (const [id, want] of this.expected) {
        const row = found.get(id);
        if (!row || row.visibility !== want.visibility || row.owner_id !== want.owner) lost++;
      }
      return { release: this.release, attempted: this.attempted, failed: this.failed, lost, errors: this.errors };
    } finally {
      await client.end();
    }
  }
}
