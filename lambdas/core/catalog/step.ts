/** The three phases of the Expand-Migrate-Contract cycle, in the order they run. */
export const PHASES = ['expand', 'migrate', 'contract'] as const;
export type Phase = (typeof PHASES)[number];

/** One SQL statement of a step, cut out of its file by PostgreSQL's parser. */
export interface Statement {
  readonly sql: string;
  /** 1-based line of the statement's first character in its file. */
  readonly line: number;
  /** Set for `CREATE INDEX CONCURRENTLY`: a re-run after a crash checks for an invalid index of this name. */
  readonly concurrentIndex?: { readonly schema: string | undefined; readonly name: string };
}

/** How a migrate step walks its data. */
export type BatchStrategy =
  | {
      /**
       * Key ranges of `batchSize` rows over an indexed key; the runner binds `:from_key` and `:to_key` (inclusive).
       * A key of several columns is compared as a row, and the placeholders are rows then.
       */
      readonly kind: 'keyset';
      readonly table: { readonly schema: string | undefined; readonly name: string };
      /** The key's columns, in index order (one for a plain key). */
      readonly keys: readonly string[];
    }
  | {
      /** The statement finds its own work, at most `:batch_size` rows a call; repeated until it affects none. */
      readonly kind: 'repeat-until-zero';
      /** The tables the statement names, quoted (found at load: the size bound of one pass is read from them). */
      readonly tables: readonly string[];
    };

export interface Migration {
  readonly strategy: BatchStrategy;
  /** Batch size from the file, overriding the run's default. */
  readonly batchSize: number | undefined;
  /** A query returning one number: rows still to migrate. Used for progress and as a gate before contract. */
  readonly pendingSql: string | undefined;
}

/** One migration file: the unit the runner applies and the database version records. */
export interface Step {
  /** `<release>_<phase><NN>`, for example `bexar_expand01`: the identifier stored in the database. */
  readonly id: string;
  readonly release: string;
  readonly phase: Phase;
  readonly number: number;
  /** Path relative to the migrations directory, for messages. */
  readonly file: string;
  /** `sha256:<hex>` of the file's bytes. */
  readonly checksum: string;
  readonly statements: readonly Statement[];
  /** False for steps marked `-- emc:no-transaction` (CREATE INDEX CONCURRENTLY): run statement by statement. */
  readonly transactional: boolean;
  /**
   * Set when the file overrides a phase check with a reason: `emc:allow-destructive` (the findings it allowed) or
   * `emc:no-pending` (a migrate step contract cannot check). Reported by plan and kept in the execution's plan.
   */
  readonly lintOverride: { readonly reason: string; readonly findings: readonly string[] } | undefined;
  /** Set for migrate steps only. */
  readonly migration: Migration | undefined;
}

export interface Catalog {
  readonly directory: string;
  /** Releases in the order they ship, as declared in `releases.json`. */
  readonly releases: readonly string[];
  /** Every step, in application order: by release, then phase, then number. */
  readonly steps: readonly Step[];
}

export function stepId(release: string, phase: Phase, number: number): string {
  return `${release}_${phase}${String(number).padStart(2, '0')}`;
}

/** The steps of `phase` from the first release up to and including `target`, in application order. */
export function stepsUpTo(catalog: Catalog, phase: Phase, target: string): Step[] {
  const last = catalog.releases.indexOf(target);
  return catalog.steps.filter((s) => s.phase === phase && catalog.releases.indexOf(s.release) <= last);
}
