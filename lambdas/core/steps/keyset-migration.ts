import type { Directive } from '../catalog/directives.ts';
import { keysetSource } from '../migrate/batch-source.ts';
import { autocommitted } from '../phases/run-context.ts';
import { parseMigration, preparedMigration, type MigrationCommon } from './migration.ts';
import type { StepKind } from './step-kind.ts';

/**
 * `-- emc:keyset table=<[schema.]table> key=<column>[,<column>...]`: batches are key ranges of `batchSize` rows over an
 * indexed key; the runner binds `:from_key` and `:to_key` (inclusive). A key of several columns is compared as a row,
 * and the placeholders are rows then. A pass ends at the last key.
 */
export interface KeysetMigration extends MigrationCommon {
  readonly kind: 'keyset';
  readonly table: { readonly schema: string | undefined; readonly name: string };
  /** The key's columns, in index order (one for a plain key), folded to lower case. */
  readonly keys: readonly string[];
}

const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_$]*$/;

export const keysetMigration: StepKind<KeysetMigration> = {
  kind: 'keyset',
  transactional: true,
  phases: ['migrate'],
  selectedBy: { directive: 'keyset', example: '-- emc:keyset table=<table> key=<column>' },

  describe(step) {
    const table = step.table.schema ? `${step.table.schema}.${step.table.name}` : step.table.name;
    return `keyset table=${table} key=${step.keys.join(',')}`;
  },

  parse(file) {
    return parseMigration(file, 'keyset', ['from_key', 'to_key'], () => {
      const keyset = file.directive('keyset');
      return keyset && readKeyset(keyset, file.problem);
    });
  },

  async prepare(ctx, step) {
    // The key is checked against the database before anything is written (KeysetKeyError).
    const source = await keysetSource(autocommitted(ctx, `describing the batches of ${step.id}`), step);
    return preparedMigration(ctx, step, source, keysetMigration.describe(step));
  },
};

function readKeyset(
  keyset: Directive,
  problem: (message: string, line?: number) => void,
): Pick<KeysetMigration, 'table' | 'keys'> | undefined {
  const usage = 'table=<[schema.]table> key=<column>[,<column>...]';
  const fields = new Map<string, string>();
  for (const part of keyset.argument.split(/\s+/)) {
    const [name, value, extra] = part.split('=');
    if (!name || value === undefined || extra !== undefined || !['table', 'key'].includes(name) || fields.has(name)) {
      problem(`"emc:keyset" takes "${usage}", found "${keyset.argument}"`, keyset.line);
      return undefined;
    }
    fields.set(name, value);
  }
  const table = fields.get('table')?.split('.');
  const keys = fields.get('key')?.split(',');
  const [first, second] = table ?? [];
  if (!table || !keys || first === undefined || table.length > 2 || ![...table, ...keys].every((n) => IDENTIFIER.test(n))) {
    problem(`"emc:keyset" needs table=<[schema.]table> and key=<column>[,<column>...], each a plain SQL identifier, found "${keyset.argument}"`, keyset.line);
    return undefined;
  }
  // Unquoted identifiers fold to lower case in PostgreSQL; the runner quotes them, so fold here.
  const folded = keys.map((k) => k.toLowerCase());
  if (new Set(folded).size !== folded.length) {
    problem(`"emc:keyset" names a key column twice, found "${keyset.argument}"`, keyset.line);
    return undefined;
  }
  const [schema, name] = second === undefined ? [undefined, first] : [first, second];
  return { table: { schema: schema?.toLowerCase(), name: name.toLowerCase() }, keys: folded };
}
