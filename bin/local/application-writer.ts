import { isDeepStrictEqual } from 'node:util';
import pg from 'pg';

/**
 * One release of an application writing to the database while an upgrade runs: the demo's workloads (emc local),
 * the tests' release writers, the cookbook's releases and the benchmark's writer all run on this. What is written is the workload's
 * (`ReleaseWorkload`, in that release's own columns); the writer runs it in a loop on one connection of its own,
 * named by `application_name` (what the drain gate's session source looks for), counts and times every write,
 * and keeps the ledger: for every row it wrote, what that row must read once the upgrade is over.
 */

/** A random number in [0, 1). */
export type Random = () => number;

/** Small deterministic PRNG (mulberry32): a run can be replayed from its seed. */
export function seededRandom(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** What a workload writes through: the writer's pool of one connection (`connect()` for a transaction). */
export type Queryable = Pick<pg.Pool, 'query' | 'connect'>;

/**
 * What one release of the application writes. `Row` is a row as it must read once the upgrade is over (in the final
 * schema's terms), so that rows written by different releases compare alike.
 */
export interface ReleaseWorkload<Row extends object> {
  /** Inserts a row (`n`: the write's number, for unique values); answers its id and what it must read. */
  insert(db: Queryable, n: number, random: Random): Promise<{ readonly id: number; readonly row: Row }>;
  /** Updates row `id`; answers the fields it must now read (merged into the row's ledger entry). */
  update(db: Queryable, id: number, n: number, random: Random): Promise<Partial<Row>>;
}

export interface WriterStatement {
  /** Wall clock (epoch ms) when the statement was sent, to match it with what the server saw. */
  readonly startEpochMs: number;
  readonly latencyMs: number;
  readonly failed: boolean;
}

export interface ApplicationWriterOptions<Row extends object> {
  readonly databaseUrl: string;
  readonly applicationName: string;
  readonly workload: ReleaseWorkload<Row>;
  /**
   * The rows this writer may update, besides those it inserts. Writers of one run own disjoint rows, so the last
   * value a writer wrote to a row is the value it must end with.
   */
  readonly owned?: readonly number[];
  /**
   * What every owned row must read, shared by the writers of one run; the writer records its inserts and updates in
   * it. Without one, nothing is recorded (the benchmark only times the writes).
   */
  readonly ledger?: Map<number, Row>;
  /** The share of writes that insert (every write inserts while the writer owns no row). @default 1/3 */
  readonly insertShare?: number;
  /** @default a random seed */
  readonly seed?: number;
  /** Pause between two writes. @default 5 */
  readonly pauseMs?: number;
}

export interface WriterReport {
  readonly applicationName: string;
  readonly attempted: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly inserts: number;
  /** The first few failures, with the phase each happened in. */
  readonly errors: readonly string[];
  /** Writes that succeeded in each phase (set by the caller through `phase`). */
  readonly byPhase: Readonly<Record<string, number>>;
  /** Every write, timed. */
  readonly statements: readonly WriterStatement[];
}

const ERRORS_KEPT = 5;

export class ApplicationWriter<Row extends object> {
  private readonly pool: pg.Pool;
  private readonly random: Random;
  private readonly own: number[];
  private readonly statements: WriterStatement[] = [];
  private readonly errors: string[] = [];
  private readonly byPhase: Record<string, number> = {};
  private readonly waiting: { readonly count: number; readonly resolve: () => void }[] = [];
  private inserts = 0;
  private running: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;
  private stopping = false;
  /** What the upgrade is doing now, as the caller sees it; successful writes are counted per phase. */
  phase = 'before';
  /** When the writer disconnected (epoch ms): for an old release, when its last instance went. */
  stoppedAt: number | undefined;

  constructor(private readonly options: ApplicationWriterOptions<Row>) {
    // A pool of one, not a client: a connection the server drops is replaced, and the error reaches the write.
    this.pool = new pg.Pool({ connectionString: options.databaseUrl, max: 1, application_name: options.applicationName });
    this.pool.on('error', () => {});
    this.own = [...(options.owned ?? [])];
    this.random = seededRandom(options.seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  start(): void {
    this.running ??= this.loop();
  }

  /**
   * Resolves once `more` further writes (successful or not) are done: the writer wrote while whatever the caller ran
   * before this call ran. Resolves at once when the writer has stopped.
   */
  wrote(more: number): Promise<void> {
    if (this.stopping) return Promise.resolve();
    return new Promise((resolve) => this.waiting.push({ count: this.statements.length + more, resolve }));
  }

  /** Stops writing and disconnects: for an old release, this is its instances draining. */
  stop(): Promise<WriterReport> {
    this.stopping = true;
    this.stopped ??= (async () => {
      await this.running;
      await this.pool.end();
      this.stoppedAt = Date.now();
    })();
    return this.stopped.then(() => this.report());
  }

  report(): WriterReport {
    const failed = this.statements.filter((s) => s.failed).length;
    return {
      applicationName: this.options.applicationName,
      attempted: this.statements.length,
      succeeded: this.statements.length - failed,
      failed,
      inserts: this.inserts,
      errors: [...this.errors],
      byPhase: { ...this.byPhase },
      statements: this.statements,
    };
  }

  private async loop(): Promise<void> {
    const { workload, ledger, insertShare = 1 / 3, pauseMs = 5 } = this.options;
    for (let n = 1; !this.stopping; n++) {
      const insert = this.own.length === 0 || this.random() < insertShare;
      const id = insert ? undefined : this.own[Math.floor(this.random() * this.own.length)]!;
      const startEpochMs = Date.now();
      const started = performance.now();
      let failed = false;
      try {
        if (id === undefined) {
          const written = await workload.insert(this.pool, n, this.random);
          this.own.push(written.id);
          this.inserts++;
          ledger?.set(written.id, written.row);
        } else {
          const changed = await workload.update(this.pool, id, n, this.random);
          if (ledger) ledger.set(id, { ...ledger.get(id)!, ...changed });
        }
        this.byPhase[this.phase] = (this.byPhase[this.phase] ?? 0) + 1;
      } catch (error) {
        failed = true;
        if (this.errors.length < ERRORS_KEPT) this.errors.push(`${this.phase}: ${(error as Error).message}`);
      }
      this.statements.push({ startEpochMs, latencyMs: performance.now() - started, failed });
      this.resolveWaiting(false);
      await new Promise((resolve) => setTimeout(resolve, pauseMs));
    }
    this.resolveWaiting(true);
  }

  private resolveWaiting(all: boolean): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      const w = this.waiting[i]!;
      if (all || this.statements.length >= w.count) {
        this.waiting.splice(i, 1);
        w.resolve();
      }
    }
  }
}

/**
 * The ledger's rows that do not read as last written: missing from `found` (the rows as read back, by id) or
 * different. One line each.
 */
export function ledgerMismatches<Row extends object>(ledger: ReadonlyMap<number, Row>, found: ReadonlyMap<number, Row>): string[] {
  const wrong: string[] = [];
  for (const [id, want] of ledger) {
    const got = found.get(id);
    if (got === undefined) wrong.push(`row ${id} is missing`);
    else if (!isDeepStrictEqual(got, want)) wrong.push(`row ${id}: ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  }
  return wrong;
}
