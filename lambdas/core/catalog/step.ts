import type { Migration, SchemaStep, Step } from '../steps/step-kind.ts';

/** The three phases of the Expand-Migrate-Contract cycle, in the order they run. */
export const PHASES = ['expand', 'migrate', 'contract'] as const;
export type Phase = (typeof PHASES)[number];

/** One SQL statement of a step, cut out of its file by PostgreSQL's parser. */
export interface Statement {
  readonly sql: string;
  /** 1-based line of the statement's first character in its file. */
  readonly line: number;
}

export interface Catalog {
  readonly directory: string;
  /** Releases in the order they ship, as declared in `releases.json`. */
  readonly releases: readonly string[];
  /** Every step, in application order: by release, then phase, then number. */
  readonly steps: readonly Step[];
}

/** The steps a phase holds: migrations in migrate, schema steps in expand and contract. */
export type StepOfPhase<P extends Phase> = P extends 'migrate' ? Migration : SchemaStep;

export function stepId(release: string, phase: Phase, number: number): string {
  return `${release}_${phase}${String(number).padStart(2, '0')}`;
}

/** The steps of `phase` from the first release up to and including `target`, in application order. */
export function stepsUpTo<P extends Phase>(catalog: Catalog, phase: P, target: string): StepOfPhase<P>[] {
  const last = catalog.releases.indexOf(target);
  return catalog.steps.filter(
    (s): s is StepOfPhase<P> => s.phase === phase && catalog.releases.indexOf(s.release) <= last,
  );
}
