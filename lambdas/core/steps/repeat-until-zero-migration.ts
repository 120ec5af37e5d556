import { tablesNamedBy } from '../catalog/statement-tables.ts';
import { repeatUntilZeroSource } from '../migrate/batch-source.ts';
import { autocommitted } from '../phases/run-context.ts';
import { parseMigration, preparedMigration, type MigrationCommon } from './migration.ts';
import type { StepKind } from './step-kind.ts';

/**
 * `-- emc:repeat-until-zero`: the statement finds its own work, at most `:batch_size` rows a call, and is repeated
 * until a batch affects none. Its pass has no end of its own, so it is bounded by the sizes of the tables it names.
 */
export interface RepeatUntilZeroMigration extends MigrationCommon {
  readonly kind: 'repeat-until-zero';
  /** The tables the statement names, quoted (found at load: the size bound of one pass is read from them). */
  readonly tables: readonly string[];
}

export const repeatUntilZeroMigration: StepKind<RepeatUntilZeroMigration> = {
  kind: 'repeat-until-zero',
  transactional: true,
  phases: ['migrate'],
  selectedBy: { directive: 'repeat-until-zero', example: '-- emc:repeat-until-zero' },
  describe: () => 'repeat-until-zero',

  parse(file) {
    return parseMigration(file, 'repeat-until-zero', ['batch_size'], (statement) => ({ tables: tablesNamedBy(statement.node) }));
  },

  async prepare(ctx, step) {
    const source = await repeatUntilZeroSource(autocommitted(ctx, `describing the batches of ${step.id}`), step);
    return preparedMigration(ctx, step, source, repeatUntilZeroMigration.describe(step));
  },
};
