import type { Directive, DirectiveName } from '../catalog/directives.ts';
import type { ParsedStatement, SplitResult } from '../catalog/sql-statements.ts';
import type { Phase, Statement } from '../catalog/step.ts';
import type { RunContext } from '../phases/run-context.ts';
import type { ReadOnlySession } from '../state/engine-transaction.ts';
import type { ProgressRow } from '../state/migrate-progress.ts';
import type { KeysetMigration } from './keyset-migration.ts';
import type { RepeatUntilZeroMigration } from './repeat-until-zero-migration.ts';
import type { StatementByStatementStep } from './statement-by-statement-step.ts';
import type { TransactionalSchemaStep } from './transactional-schema-step.ts';

/**
 * A step is one migration file, and each kind of step is a member of the `Step` union with a file of its own in this
 * folder: its data (what the compiled catalog ships) and a `StepKind` (how it is read from its file and how it runs).
 * The runner (`run-steps.ts`) never asks which kind it holds; it calls the kind's `prepare`, then `run` for a budget,
 * and asks it what remains. Adding a kind is one file here (its data type, the directive that selects it, `parse`,
 * `describe` and `prepare`), its member in `Step` and its entry in `STEP_KINDS` (the compiler refuses a kind missing
 * from either; load-catalog chooses among `STEP_KINDS` by their `phases` and `selectedBy`), and one table-driven test
 * file `test/step-kind-<kind>.test.ts` (its cases run by `test/support/step-kind-cases.ts`: checks after expand,
 * migrate and contract, failures, refusals at load).
 */
export type Step = SchemaStep | Migration;
/** Expand and contract steps: DDL applied whole. */
export type SchemaStep = TransactionalSchemaStep | StatementByStatementStep;
/** Migrate steps: one data-modifying statement repeated batch by batch. */
export type Migration = KeysetMigration | RepeatUntilZeroMigration;

/** What every step holds, whatever its kind. */
export interface StepCommon {
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
  /**
   * Set when the file overrides a phase check with a reason: `emc:allow-destructive` (the findings it allowed) or
   * `emc:no-pending` (a migrate step contract cannot check). Reported by plan and kept in the execution's plan.
   */
  readonly lintOverride: { readonly reason: string; readonly findings: readonly string[] } | undefined;
}

/** A migration file as load-catalog read it: parsed, its directives read, the checks common to every kind done. */
export interface StepFile<P extends Phase> {
  readonly common: Omit<StepCommon, 'phase' | 'statements'> & { readonly phase: P };
  readonly statements: readonly ParsedStatement[];
  directive(name: Directive['name']): Directive | undefined;
  /** The release has contract steps (a migrate step then needs a pending query). */
  readonly releaseHasContract: boolean;
  /** Reports a problem of the file; every problem is reported at once, with the file's name. */
  problem(message: string, line?: number): void;
  /**
   * PostgreSQL's parser, for the kind's own checks. Handed in by load-catalog rather than imported: the kinds also
   * run in the Lambda bundles, which must stay free of libpg-query (the catalog is compiled at synth).
   */
  readonly parser: {
    splitStatements(text: string): SplitResult;
    placeholderNames(sql: string): string[];
  };
}

/** How long a step may run: schema steps always run to their end; a migration stops between batches at `deadline`. */
export interface Budget {
  /** Epoch milliseconds. */
  readonly deadline: number;
  /** Run at least one batch even past the deadline: a call that made no progress would loop forever. */
  readonly mustProgress: boolean;
}

/**
 * What one run of a step did: `finished` once the step is recorded applied, with the composite version then; not
 * finished only for a migration whose budget ran out.
 */
export type StepOutcome =
  | { readonly finished: true; readonly version: string; readonly rows: number; readonly batches: number }
  | { readonly finished: false; readonly rows: number; readonly batches: number };

/** A step checked against the database (read-only, nothing written), ready to run. */
export interface PreparedStep {
  /**
   * Runs the step for `budget`. When it finishes it records the step applied (the version and a history row) in the
   * same transaction as its last write, so the version never says a step ran that did not commit. A failure is thrown
   * as the engine's typed error, after its history row is written.
   */
  run(budget: Budget): Promise<StepOutcome>;
  /**
   * What remains of an unfinished step: rows still to migrate (its pending query, else an estimate), undefined when it
   * cannot tell. `progress` is its migrate progress row, read in the same transaction. A schema step has no rows: 0.
   */
  remaining(tx: ReadOnlySession, progress: ProgressRow | undefined): Promise<number | undefined>;
}

export interface StepKind<S extends Step> {
  readonly kind: S['kind'];
  /**
   * True when a failure leaves none of the step's writes behind (its statements run in one transaction, or each of
   * its batches does): the failure's next action and plan's "transaction" column say so.
   */
  readonly transactional: boolean;
  /** The phases whose files may be of this kind. */
  readonly phases: readonly S['phase'][];
  /**
   * How load-catalog chooses this kind for a file of its phases: the directive that selects it (with a line showing
   * it, for the problem that asks for one), or `default` for the kind of a file with none of its phases' directives.
   * A phase has at most one default.
   */
  readonly selectedBy: { readonly directive: DirectiveName; readonly example: string } | 'default';
  /** The step's kind as its file states it (`keyset table=images key=id`): stored with a migration's progress. */
  describe(step: S): string;
  /**
   * This kind's part of load-catalog's validation: its own directives and statements. Reports every problem through
   * `file.problem`; load-catalog keeps the step only if no problem was reported (undefined: none to keep).
   */
  parse(file: StepFile<S['phase']>): S | undefined;
  /** Checks what the step needs of the database before anything is written (e.g. a keyset's index). */
  prepare(ctx: RunContext, step: S): Promise<PreparedStep>;
}
