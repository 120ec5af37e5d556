import { createHash } from 'node:crypto';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadCatalog } from '../lambdas/core/catalog/load-catalog.ts';
import type { Catalog } from '../lambdas/core/catalog/step.ts';
import type { Step } from '../lambdas/core/steps/step-kind.ts';
import { CatalogError, type CatalogProblem } from '../lambdas/core/errors.ts';
import { DEMO_MIGRATIONS, writeMigrations } from './support/catalog-fixtures.ts';

/** A harmless expand step. */
const ADD = 'ALTER TABLE t ADD COLUMN c int;\n';
/** A valid keyset migrate statement. */
const KEYSET_UPDATE = 'UPDATE t SET c = 1 WHERE id BETWEEN :from_key AND :to_key;\n';

async function loadFailure(directory: string): Promise<CatalogError> {
  const error = await loadCatalog(directory).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, 'the catalog should have been refused').toBeInstanceOf(CatalogError);
  expect((error as CatalogError).name).toBe('CatalogError');
  return error as CatalogError;
}

function step(catalog: Catalog, id: string): Step {
  const found = catalog.steps.find((s) => s.id === id);
  expect(found, `step ${id}`).toBeDefined();
  return found!;
}

interface Expected {
  readonly file: string;
  /** The essential part of the message. */
  readonly message: string | RegExp;
  readonly line?: number;
  readonly column?: number;
}

interface BadCase {
  readonly name: string;
  readonly files: Record<string, string | Uint8Array>;
  readonly releases?: string[];
  /** Changes the written directory before loading (e.g. removes releases.json). */
  readonly tweak?: (directory: string) => void;
  /** Every problem the catalog must report, and no other. */
  readonly problems: readonly Expected[];
}

const BAD_CATALOGS: BadCase[] = [
  {
    name: 'missing releases.json',
    files: { 'a/expand01_x.sql': ADD },
    tweak: (d) => rmSync(join(d, 'releases.json')),
    problems: [{ file: 'releases.json', message: /^missing: the migrations directory .* must declare the order of releases in releases\.json/ }],
  },
  {
    name: 'releases.json is not valid JSON',
    files: { 'releases.json': '{"releases": ["a"', 'a/expand01_x.sql': ADD },
    problems: [{ file: 'releases.json', message: /^not valid JSON: / }],
  },
  {
    name: 'releases.json without a releases list',
    files: { 'releases.json': '{"order": ["a"]}', 'a/expand01_x.sql': ADD },
    problems: [
      { file: 'releases.json', message: /^releases: / },
      { file: 'releases.json', message: /unrecognized key.*"order"/i },
    ],
  },
  {
    name: 'release listed twice',
    files: { 'a/expand01_x.sql': ADD, 'b/expand01_x.sql': ADD },
    releases: ['a', 'b', 'a'],
    problems: [{ file: 'releases.json', message: 'release "a" is listed more than once' }],
  },
  {
    name: 'release folder not listed',
    files: { 'a/expand01_x.sql': ADD, 'b/expand01_x.sql': ADD },
    releases: ['a'],
    problems: [{ file: 'b/', message: 'release folder "b" is not listed in releases.json' }],
  },
  {
    name: 'release listed but absent',
    files: { 'a/expand01_x.sql': ADD },
    releases: ['a', 'b'],
    problems: [{ file: 'releases.json', message: 'release "b" is listed but has no folder b/' }],
  },
  {
    name: 'bad file name',
    files: { 'a/expand01_x.sql': ADD, 'a/expand2_Add-Col.sql': ADD },
    problems: [{ file: 'a/expand2_Add-Col.sql', message: /^bad file name: expected expandNN_<words>\.sql/ }],
  },
  {
    name: 'file name with an unknown phase',
    files: { 'a/expand01_x.sql': ADD, 'a/cleanup01_x.sql': ADD },
    problems: [{ file: 'a/cleanup01_x.sql', message: /^bad file name/ }],
  },
  {
    name: 'duplicate number',
    files: { 'a/expand01_a.sql': ADD, 'a/expand01_b.sql': ADD },
    problems: [{ file: 'a/expand01_b.sql', message: 'duplicate number: expand01 is also used by a/expand01_a.sql' }],
  },
  {
    name: 'missing number',
    files: { 'a/expand01_x.sql': ADD, 'a/expand03_z.sql': ADD },
    problems: [{ file: 'a/expand03_z.sql', message: 'missing number: a_expand02 comes before it' }],
  },
  {
    name: 'release folder without steps',
    files: { 'a/expand01_x.sql': ADD, 'b/README.md': '# nothing yet\n' },
    problems: [{ file: 'b/', message: 'release folder has no migration steps' }],
  },
  {
    name: 'empty file',
    files: { 'a/expand01_x.sql': ADD, 'a/expand02_empty.sql': '' },
    problems: [{ file: 'a/expand02_empty.sql', message: 'empty file: no SQL statement' }],
  },
  {
    name: 'comment-only file',
    files: { 'a/expand01_x.sql': ADD, 'a/contract01_todo.sql': '-- TODO: drop the old column; later\n/* nothing; yet */\n' },
    problems: [{ file: 'a/contract01_todo.sql', message: 'empty file: no SQL statement' }],
  },
  {
    name: 'parse error on line 3',
    files: {
      'a/expand01_x.sql': 'ALTER TABLE t ADD COLUMN a int;\nALTER TABLE t ADD COLUMN b int;\nALTER TABLE t ADD COLUMN FROM int;\n',
    },
    problems: [{ file: 'a/expand01_x.sql', message: 'SQL does not parse: syntax error at or near "FROM"', line: 3, column: 26 }],
  },
  {
    name: 'parse error after multi-byte text',
    files: { 'a/expand01_x.sql': '-- café 🎉 naïve\nSELECT 1;\n  SELEC x;\n' },
    problems: [{ file: 'a/expand01_x.sql', message: 'SQL does not parse: syntax error at or near "SELEC"', line: 3, column: 3 }],
  },
  {
    // The column counts characters: 'é' and the emoji are one each.
    name: 'parse error after multi-byte text on the same line',
    files: { 'a/expand01_x.sql': "SELECT 1;\nSELECT 'é🎉', FROM t;\n" },
    problems: [{ file: 'a/expand01_x.sql', message: 'SQL does not parse: syntax error at or near "FROM"', line: 2, column: 14 }],
  },
  {
    name: 'a step file that is not UTF-8 (Latin-1)',
    files: { 'a/expand01_x.sql': Buffer.from("-- caf\u00e9\nALTER TABLE t ADD COLUMN c int;\n", 'latin1') },
    problems: [
      {
        file: 'a/expand01_x.sql',
        message: 'not valid UTF-8: byte 0xE9 at byte offset 6 does not start a UTF-8 character; save the file as UTF-8',
        line: 1,
        column: 7,
      },
    ],
  },
  {
    name: 'a truncated UTF-8 character after valid multi-byte text',
    files: { 'a/expand01_x.sql': Buffer.concat([Buffer.from("ALTER TABLE t ADD COLUMN c text DEFAULT 'é"), Buffer.from([0xe2, 0x82]), Buffer.from("';\n")]) },
    problems: [{ file: 'a/expand01_x.sql', message: 'not valid UTF-8: byte 0xE2 at byte offset 43 ', line: 1, column: 43 }],
  },
  {
    name: 'releases.json that is not UTF-8',
    files: { 'releases.json': Buffer.from('{"releases": ["caf\u00e9"]}', 'latin1'), 'a/expand01_x.sql': ADD },
    problems: [{ file: 'releases.json', message: 'not valid UTF-8: byte 0xE9 at byte offset 18', line: 1, column: 19 }],
  },
  {
    name: 'unknown directive',
    files: { 'a/expand01_x.sql': `-- emc:transactionless\n${ADD}` },
    problems: [{ file: 'a/expand01_x.sql', message: 'unknown directive "emc:transactionless"', line: 1 }],
  },
  {
    name: 'directive in the wrong phase',
    files: { 'a/expand01_x.sql': ADD, 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:no-transaction\n${KEYSET_UPDATE}` },
    problems: [
      {
        file: 'a/migrate01_m.sql',
        message: 'directive "emc:no-transaction" is not allowed in a migrate step (only in expand, contract)',
        line: 2,
      },
    ],
  },
  {
    name: 'directive given twice',
    files: { 'a/expand01_x.sql': `-- emc:no-transaction\n-- emc:no-transaction\n${ADD}` },
    problems: [{ file: 'a/expand01_x.sql', message: 'directive "emc:no-transaction" appears more than once', line: 2 }],
  },
  {
    name: 'directive inside a dollar-quoted body',
    files: {
      'a/expand01_fn.sql':
        'CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$\nBEGIN\n-- emc:no-transaction\n  PERFORM 1;\nEND\n$$;\n',
    },
    problems: [{ file: 'a/expand01_fn.sql', message: '"-- emc:no-transaction" is inside a string, a dollar-quoted body or a block comment, where emc does not read directives', line: 3 }],
  },
  {
    // Obeyed, the override would let the drop through.
    name: 'directive inside a statement',
    files: { 'a/expand01_x.sql': 'ALTER TABLE t\n-- emc:allow-destructive the column is unused\n  DROP COLUMN old;\n' },
    problems: [
      { file: 'a/expand01_x.sql', message: '"-- emc:allow-destructive" is inside the statement starting on line 1, where emc does not read directives', line: 2 },
      { file: 'a/expand01_x.sql', message: /^expand must not drop column "old"/, line: 1 },
    ],
  },
  {
    name: 'directive after SQL on the same line',
    files: { 'a/expand01_x.sql': `-- emc:no-transaction\nCREATE INDEX CONCURRENTLY t_c_idx ON t (c); -- emc:allow-destructive why not\n` },
    problems: [{ file: 'a/expand01_x.sql', message: '"-- emc:allow-destructive" follows SQL on the same line, where emc does not read directives', line: 2 }],
  },
  {
    name: 'BEGIN and COMMIT in a step',
    files: { 'a/expand01_x.sql': `BEGIN;\n${ADD}COMMIT;\n` },
    problems: [
      { file: 'a/expand01_x.sql', message: /^BEGIN is not allowed in a step: emc runs each step in one transaction of its own .*split it into two steps$/, line: 1 },
      { file: 'a/expand01_x.sql', message: /^COMMIT is not allowed in a step/, line: 3 },
    ],
  },
  {
    name: 'SAVEPOINT and ROLLBACK TO in a step',
    files: { 'a/expand01_x.sql': ADD, 'a/contract01_x.sql': 'SAVEPOINT before_drop;\nALTER TABLE t DROP COLUMN old;\nROLLBACK TO SAVEPOINT before_drop;\n' },
    problems: [
      { file: 'a/contract01_x.sql', message: /^SAVEPOINT is not allowed in a step/, line: 1 },
      { file: 'a/contract01_x.sql', message: /^ROLLBACK TO is not allowed in a step/, line: 3 },
    ],
  },
  {
    name: 'SET lock_timeout in a step',
    files: { 'a/expand01_x.sql': `SET lock_timeout = '10s';\n${ADD}` },
    problems: [{ file: 'a/expand01_x.sql', message: 'SET lock_timeout is not allowed in a step: emc sets lock_timeout itself (the lockTimeoutMs setting)', line: 1 }],
  },
  {
    name: 'SET LOCAL statement_timeout in a step',
    files: { 'a/expand01_x.sql': ADD, 'a/contract01_x.sql': 'SET LOCAL statement_timeout = 0;\nALTER TABLE t DROP COLUMN old;\n' },
    problems: [{ file: 'a/contract01_x.sql', message: 'SET LOCAL statement_timeout is not allowed in a step: emc sets statement_timeout itself', line: 1 }],
  },
  {
    name: 'SET search_path in a step',
    files: { 'a/expand01_x.sql': `SET search_path TO app, public;\n${ADD}` },
    problems: [{ file: 'a/expand01_x.sql', message: /^SET search_path is not allowed in a step: .*use schema-qualified names/, line: 1 }],
  },
  {
    name: 'RESET ALL in a step',
    files: { 'a/expand01_x.sql': `${ADD}RESET ALL;\n` },
    problems: [{ file: 'a/expand01_x.sql', message: /^RESET ALL is not allowed in a step: a session setting would outlive the step/, line: 2 }],
  },
  {
    name: 'psql meta-commands in a step',
    files: { 'a/expand01_x.sql': `\\set ON_ERROR_STOP on\n${ADD}  \\i more.sql\n` },
    problems: [
      { file: 'a/expand01_x.sql', message: 'psql meta-command "\\set" is not SQL and emc does not run psql: emc has no variables', line: 1, column: 1 },
      { file: 'a/expand01_x.sql', message: 'psql meta-command "\\i" is not SQL and emc does not run psql: emc does not include files: make the included SQL a step of its own', line: 3, column: 3 },
    ],
  },
  {
    name: 'psql \\connect in a step',
    files: { 'a/expand01_x.sql': ADD, 'a/contract01_x.sql': '\\connect other\nALTER TABLE t DROP COLUMN old;\n' },
    problems: [{ file: 'a/contract01_x.sql', message: 'psql meta-command "\\connect" is not SQL and emc does not run psql: a run works on the one database it is given', line: 1, column: 1 }],
  },
  {
    name: 'expand drops a column',
    files: { 'a/expand01_x.sql': `${ADD}ALTER TABLE t DROP COLUMN old;\n` },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand must not drop column "old" .*emc:allow-destructive/, line: 2 }],
  },
  {
    name: 'expand drops a table',
    files: { 'a/expand01_x.sql': 'DROP TABLE IF EXISTS legacy;\n' },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand must not drop a table/, line: 1 }],
  },
  {
    name: 'expand renames a column',
    files: { 'a/expand01_x.sql': 'ALTER TABLE t RENAME COLUMN owner TO owner_id;\n' },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand must not rename a column/, line: 1 }],
  },
  {
    name: 'expand renames a table',
    files: { 'a/expand01_x.sql': 'ALTER TABLE t RENAME TO t2;\n' },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand must not rename a table/, line: 1 }],
  },
  {
    name: 'expand drops a type with CASCADE',
    files: { 'a/expand01_x.sql': `${ADD}DROP TYPE mood CASCADE;\n` },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand must not DROP TYPE \.\.\. CASCADE \(it also drops whatever depends on it, e\.g\. a column of a dropped type, with its data\)/, line: 2 }],
  },
  {
    name: 'expand drops a function with CASCADE',
    files: { 'a/expand01_x.sql': 'DROP FUNCTION IF EXISTS old_sync() CASCADE;\n' },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand must not DROP FUNCTION \.\.\. CASCADE/, line: 1 }],
  },
  {
    name: 'expand deletes rows',
    files: { 'a/expand01_x.sql': `${ADD}DELETE FROM t WHERE c IS NULL;\n` },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand must not delete rows/, line: 2 }],
  },
  {
    name: 'expand deletes rows in a WITH query',
    files: { 'a/expand01_x.sql': 'WITH d AS (DELETE FROM t RETURNING id) INSERT INTO t_archive SELECT id FROM d;\n' },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand must not delete rows/, line: 1 }],
  },
  {
    name: 'expand changes the type of a column',
    files: { 'a/expand01_x.sql': 'ALTER TABLE t ALTER COLUMN c TYPE bigint;\n' },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand must not change the type of column "c"/, line: 1 }],
  },
  {
    name: 'expand runs a DO block',
    files: { 'a/expand01_x.sql': `${ADD}DO $$ BEGIN EXECUTE 'DROP TABLE legacy'; END $$;\n` },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand cannot check what a DO block runs: .*override with "-- emc:allow-destructive <reason>"/, line: 2 }],
  },
  {
    name: 'expand calls a procedure',
    files: { 'a/expand01_x.sql': 'CALL cleanup_images();\n' },
    problems: [{ file: 'a/expand01_x.sql', message: /^expand cannot check what CALL of a procedure runs/, line: 1 }],
  },
  {
    name: 'contract adds a column',
    files: { 'a/expand01_x.sql': ADD, 'a/contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\nALTER TABLE t ADD COLUMN extra int;\n' },
    problems: [{ file: 'a/contract01_x.sql', message: /^contract must not add column "extra"/, line: 2 }],
  },
  {
    name: 'contract creates a table',
    files: { 'a/expand01_x.sql': ADD, 'a/contract01_x.sql': 'CREATE TABLE audit (id bigint);\n' },
    problems: [{ file: 'a/contract01_x.sql', message: /^contract must not create a table/, line: 1 }],
  },
  {
    name: 'override that overrides nothing',
    files: { 'a/expand01_x.sql': `-- emc:allow-destructive just in case\n${ADD}` },
    problems: [{ file: 'a/expand01_x.sql', message: '"emc:allow-destructive" overrides nothing', line: 1 }],
  },
  {
    name: 'CREATE INDEX CONCURRENTLY without no-transaction',
    files: { 'a/expand01_x.sql': `${ADD}CREATE INDEX CONCURRENTLY t_c_idx ON t (c);\n` },
    problems: [
      { file: 'a/expand01_x.sql', message: 'IndexStmt cannot run inside a transaction; put it in its own step marked "-- emc:no-transaction"', line: 2 },
    ],
  },
  {
    name: 'DROP INDEX CONCURRENTLY in a transactional contract step',
    files: { 'a/expand01_x.sql': ADD, 'a/contract01_x.sql': 'DROP INDEX CONCURRENTLY t_c_idx;\n' },
    problems: [{ file: 'a/contract01_x.sql', message: 'DropStmt cannot run inside a transaction', line: 1 }],
  },
  {
    name: 'unnamed concurrent index',
    files: { 'a/expand01_x.sql': '-- emc:no-transaction\n\nCREATE INDEX CONCURRENTLY ON t (c);\n' },
    problems: [{ file: 'a/expand01_x.sql', message: 'CREATE INDEX CONCURRENTLY must name its index', line: 3 }],
  },
  {
    name: 'migrate without strategy',
    files: { 'a/migrate01_m.sql': 'UPDATE t SET c = 1 WHERE c IS NULL;\n' },
    problems: [{ file: 'a/migrate01_m.sql', message: 'a migrate step must declare its batch strategy' }],
  },
  {
    name: 'migrate with both strategies',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:repeat-until-zero\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: 'choose one batch strategy: "emc:keyset" or "emc:repeat-until-zero", not both' }],
  },
  {
    name: 'keyset statement missing :to_key',
    files: { 'a/migrate01_m.sql': '-- emc:keyset table=t key=id\nUPDATE t SET c = 1 WHERE id >= :from_key;\n' },
    problems: [{ file: 'a/migrate01_m.sql', message: /^a keyset statement must use :from_key and :to_key; missing :to_key$/, line: 2 }],
  },
  {
    name: 'migrate statement with an unknown placeholder',
    files: { 'a/migrate01_m.sql': '-- emc:repeat-until-zero\nDELETE FROM t WHERE id IN (SELECT id FROM t WHERE c < :cutoff LIMIT :batch_size);\n' },
    problems: [{ file: 'a/migrate01_m.sql', message: /^a repeat-until-zero statement must use :batch_size; unknown :cutoff$/, line: 2 }],
  },
  {
    name: 'two statements in a migrate file',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n${KEYSET_UPDATE}${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: 'a migrate step holds exactly one statement (the batch), found 2' }],
  },
  {
    name: 'keyset directive without a key',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: '"emc:keyset" needs table=<[schema.]table> and key=<column>', line: 1 }],
  },
  {
    name: 'batch-size that is not a number',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:batch-size lots\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: '"emc:batch-size" must be a whole number from 1 to 100000, found "lots"', line: 2 }],
  },
  {
    name: 'batch-size zero',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:batch-size 0\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: '"emc:batch-size" must be a whole number from 1 to 100000, found "0"', line: 2 }],
  },
  {
    name: 'pending that is not a SELECT',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:pending DELETE FROM t\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: '"emc:pending" must be one SELECT', line: 2 }],
  },
  {
    name: 'migrate step running DDL',
    files: { 'a/migrate01_m.sql': '-- emc:repeat-until-zero\nALTER TABLE t ADD COLUMN c int;\n' },
    problems: [
      { file: 'a/migrate01_m.sql', message: 'the batch statement must be an INSERT, UPDATE, DELETE or MERGE (a WITH clause before it is fine), found AlterTableStmt', line: 2 },
      { file: 'a/migrate01_m.sql', message: 'a repeat-until-zero statement must use :batch_size; missing :batch_size', line: 2 },
    ],
  },
  {
    name: 'migrate batch statement that is a SELECT calling a function',
    files: { 'a/migrate01_m.sql': '-- emc:repeat-until-zero\nSELECT backfill_images(:batch_size);\n' },
    problems: [{ file: 'a/migrate01_m.sql', message: /^the batch statement must be an INSERT, UPDATE, DELETE or MERGE .*found a SELECT: .*SELECT count\(\*\) returns one every time, so the step would never end/, line: 2 }],
  },
  {
    name: 'migrate batch statement that is a SELECT count(*) over a data-modifying WITH',
    files: {
      'a/migrate01_m.sql':
        '-- emc:repeat-until-zero\nWITH u AS (UPDATE t SET c = 1 WHERE id IN (SELECT id FROM t WHERE c IS NULL LIMIT :batch_size) RETURNING 1)\nSELECT count(*) FROM u;\n',
    },
    problems: [{ file: 'a/migrate01_m.sql', message: 'the batch statement must be an INSERT, UPDATE, DELETE or MERGE (a WITH clause before it is fine), found a SELECT', line: 2 }],
  },
  {
    name: 'pending with a data-modifying WITH',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:pending WITH d AS (DELETE FROM t WHERE c IS NULL RETURNING 1) SELECT count(*) FROM d\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: '"emc:pending" must only read, and this query writes: it holds a data-modifying DELETE; it runs at every plan', line: 2 }],
  },
  {
    name: 'pending locking rows FOR UPDATE',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:pending SELECT count(*) FROM (SELECT 1 FROM t WHERE c IS NULL FOR UPDATE) x\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: '"emc:pending" must only read, and this query writes: it locks rows (FOR UPDATE / FOR SHARE)', line: 2 }],
  },
  {
    name: 'pending SELECT INTO',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:pending SELECT count(*) INTO pending_copy FROM t WHERE c IS NULL\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: '"emc:pending" must only read, and this query writes: SELECT INTO creates a table', line: 2 }],
  },
  {
    name: 'pending calling nextval()',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:pending SELECT count(*) + 0 * pg_catalog.nextval('s') FROM t WHERE c IS NULL\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: '"emc:pending" must only read, and this query writes: it calls nextval(), which writes or changes state', line: 2 }],
  },
  {
    name: 'migrate step without a pending query in a release with contract steps',
    files: {
      'a/expand01_x.sql': ADD,
      'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n${KEYSET_UPDATE}`,
      'a/contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\n',
    },
    problems: [{ file: 'a/migrate01_m.sql', message: /^a migrate step of a release with contract steps needs "-- emc:pending <SELECT>": .*"-- emc:no-pending <reason>"$/ }],
  },
  {
    name: 'no-pending in a release without contract steps',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:no-pending every row is written by the new release\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: '"emc:no-pending" overrides nothing: the release has no contract step', line: 2 }],
  },
  {
    name: 'both pending and no-pending',
    files: {
      'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:pending SELECT count(*) FROM t WHERE c IS NULL\n-- emc:no-pending just in case\n${KEYSET_UPDATE}`,
      'a/contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\n',
    },
    problems: [{ file: 'a/migrate01_m.sql', message: 'choose "emc:pending" or "emc:no-pending", not both', line: 3 }],
  },
  {
    name: 'allow-destructive in a migrate step',
    files: { 'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:allow-destructive it is fine\n${KEYSET_UPDATE}` },
    problems: [{ file: 'a/migrate01_m.sql', message: 'directive "emc:allow-destructive" is not allowed in a migrate step (only in expand, contract)', line: 2 }],
  },
  {
    name: 'parameters in an expand step',
    files: { 'a/expand01_x.sql': `${ADD}UPDATE t SET c = :value WHERE id = :id;\n` },
    problems: [{ file: 'a/expand01_x.sql', message: 'expand steps take no parameters, found :value, :id', line: 2 }],
  },
];

describe('loadCatalog refuses a bad catalog, naming the file', () => {
  it.each(BAD_CATALOGS)('$name', async ({ files, releases, tweak, problems }) => {
    const directory = writeMigrations(files, releases);
    tweak?.(directory);
    const error = await loadFailure(directory);

    expect(error.problems).toHaveLength(problems.length);
    for (const expected of problems) {
      const matches = (p: CatalogProblem) =>
        p.file === expected.file &&
        (typeof expected.message === 'string' ? p.message.includes(expected.message) : expected.message.test(p.message));
      const found = error.problems.find(matches);
      expect(found, `no problem in ${expected.file} matching ${String(expected.message)}; got ${error.message}`).toBeDefined();
      if (expected.line !== undefined) expect(found!.line).toBe(expected.line);
      if (expected.column !== undefined) expect(found!.column).toBe(expected.column);
      // The error's message lists the problem with its place, for the operator reading a log.
      const where = [expected.file, expected.line, expected.column].filter((x) => x !== undefined).join(':');
      expect(error.message).toContain(`  - ${where}: ${found!.message}`);
    }
  });

  it('reports several problems in several files together in one CatalogError', async () => {
    const directory = writeMigrations(
      {
        'a/expand01_x.sql': ADD,
        'a/expand03_gap.sql': ADD,
        'a/Expand04.sql': ADD,
        'b/expand01_empty.sql': '',
        'b/contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\nALTER TABLE t DROP COLUMN;\n',
        'b/migrate01_m.sql': '-- emc:frobnicate\nUPDATE t SET c = 1;\n',
        'c/expand01_x.sql': ADD,
      },
      ['a', 'b', 'd'],
    );
    const error = await loadFailure(directory);
    const summary = error.problems.map((p) => [p.file, p.line]);
    expect(summary).toEqual(
      expect.arrayContaining([
        ['c/', undefined],
        ['a/Expand04.sql', undefined],
        ['a/expand03_gap.sql', undefined],
        ['b/expand01_empty.sql', undefined],
        ['b/migrate01_m.sql', 1],
        ['b/migrate01_m.sql', undefined],
        ['b/contract01_x.sql', 2],
        ['releases.json', undefined],
      ]),
    );
    expect(error.problems).toHaveLength(8);
    expect(error.message).toMatch(/^The migrations catalog has 8 problems:\n/);
    expect(error.message).toContain('b/contract01_x.sql:2:');
    expect(error.message).toContain('releases.json: release "d" is listed but has no folder d/');
    expect(error.message).toContain('b/migrate01_m.sql:1: unknown directive "emc:frobnicate"');
    expect(error.transient).toBe(false);
  });
});

describe('loadCatalog on good catalogs', () => {
  it('loads the demo catalog: bexar, nine steps in order', async () => {
    const catalog = await loadCatalog(DEMO_MIGRATIONS);
    expect(catalog.releases).toEqual(['bexar']);
    expect(catalog.steps.map((s) => [s.id, s.release, s.phase, s.number])).toEqual([
      ['bexar_expand01', 'bexar', 'expand', 1],
      ['bexar_expand02', 'bexar', 'expand', 2],
      ['bexar_expand03', 'bexar', 'expand', 3],
      ['bexar_migrate01', 'bexar', 'migrate', 1],
      ['bexar_migrate02', 'bexar', 'migrate', 2],
      ['bexar_migrate03', 'bexar', 'migrate', 3],
      ['bexar_contract01', 'bexar', 'contract', 1],
      ['bexar_contract02', 'bexar', 'contract', 2],
      ['bexar_contract03', 'bexar', 'contract', 3],
    ]);
    for (const s of catalog.steps) {
      const bytes = readFileSync(join(DEMO_MIGRATIONS, s.file));
      expect(s.checksum).toBe(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
      expect(s.file.startsWith('bexar/')).toBe(true);
      expect(['keyset', 'repeat-until-zero'].includes(s.kind)).toBe(s.phase === 'migrate');
    }

    const expand01 = step(catalog, 'bexar_expand01');
    expect(expand01.file).toBe('bexar/expand01_add_visibility.sql');
    expect(expand01.kind).toBe('transactional');
    expect(expand01.lintOverride).toBeUndefined();
    expect(expand01.statements.map((s) => s.line)).toEqual([3, 5, 7, 24]);
    expect(expand01.statements[0]!.sql).toBe('ALTER TABLE images ADD COLUMN visibility text');
    expect(expand01.statements[2]!.sql).toMatch(/^CREATE FUNCTION images_sync_visibility\(\)[\s\S]*\nEND\n\$\$$/);

    const expand03 = step(catalog, 'bexar_expand03');
    expect(expand03.kind).toBe('statement-by-statement');
    expect(expand03.statements).toEqual([
      {
        sql: 'CREATE INDEX CONCURRENTLY IF NOT EXISTS images_owner_id_idx ON images (owner_id)',
        line: 4,
        concurrentIndex: { schema: undefined, name: 'images_owner_id_idx' },
      },
    ]);

    const migrate01 = step(catalog, 'bexar_migrate01');
    expect(migrate01).toMatchObject({
      kind: 'keyset',
      table: { schema: undefined, name: 'images' },
      keys: ['id'],
      batchSize: undefined,
      pendingSql: 'SELECT count(*) FROM images WHERE visibility IS NULL',
    });
    expect(migrate01.statements).toHaveLength(1);
    expect(migrate01.statements[0]!.line).toBe(3);

    const migrate03 = step(catalog, 'bexar_migrate03');
    expect(migrate03).toMatchObject({
      kind: 'repeat-until-zero',
      tables: ['"images"'],
      batchSize: 500,
      pendingSql: 'SELECT count(*) FROM images WHERE name <> btrim(name)',
    });
    expect(migrate03.statements[0]!.line).toBe(6);

    expect(step(catalog, 'bexar_contract01').statements).toHaveLength(3);
    expect(step(catalog, 'bexar_contract03').statements).toHaveLength(5);
  });

  it('splits plpgsql bodies, strings and comments holding semicolons with the real parser', async () => {
    const fn = [
      'CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $$',
      'BEGIN',
      "  NEW.s := 'a;b'; -- inner; comment",
      '  RETURN NEW;',
      'END',
      '$$',
    ].join('\n');
    const fn2 = "CREATE FUNCTION g() RETURNS int LANGUAGE plpgsql AS $body$ BEGIN PERFORM 1; RETURN 2; END $body$";
    const text = [
      '-- header; with a semicolon',
      `${fn};`,
      '',
      '/* block comment; with a semicolon */',
      "INSERT INTO t (s) VALUES ('x;y');  -- trailing; comment",
      `  ${fn2};`,
      "SELECT 'it''s; fine' AS v",
      '',
    ].join('\n');
    const catalog = await loadCatalog(writeMigrations({ 'a/expand01_fn.sql': text }));
    const [s] = catalog.steps;
    expect(s!.statements.map((x) => [x.line, x.sql])).toEqual([
      [2, fn],
      [10, "INSERT INTO t (s) VALUES ('x;y')"],
      [11, fn2],
      [12, "SELECT 'it''s; fine' AS v"],
    ]);
  });

  it('keeps statement text exact after multi-byte UTF-8 text', async () => {
    const text =
      '-- café 🎉 naïve 日本語; still a comment\n' +
      "ALTER TABLE t ADD COLUMN note text DEFAULT 'crème brûlée ☕';\n" +
      '/* 🚀🚀 */ ALTER TABLE t ADD COLUMN b int;\n';
    const catalog = await loadCatalog(writeMigrations({ 'a/expand01_utf8.sql': text }));
    expect(catalog.steps[0]!.statements).toEqual([
      { sql: "ALTER TABLE t ADD COLUMN note text DEFAULT 'crème brûlée ☕'", line: 2 },
      { sql: 'ALTER TABLE t ADD COLUMN b int', line: 3 },
    ]);
  });

  it('drops a leading UTF-8 byte order mark from the SQL, keeping the checksum of the file bytes', async () => {
    const bytes = Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from('-- emc:no-transaction\nCREATE INDEX CONCURRENTLY t_c_idx ON t (c);\n')]);
    const catalog = await loadCatalog(
      writeMigrations({ 'releases.json': Buffer.concat([bytes.subarray(0, 3), Buffer.from('{"releases": ["a"]}')]), 'a/expand01_idx.sql': bytes }),
    );
    const [s] = catalog.steps;
    // The directive on line 1 counts (the mark is not part of it) and no statement starts with U+FEFF.
    expect(s!.kind).toBe('statement-by-statement');
    expect(s!.statements.map((x) => [x.line, x.sql])).toEqual([[2, 'CREATE INDEX CONCURRENTLY t_c_idx ON t (c)']]);
    expect(s!.checksum).toBe(`sha256:${createHash('sha256').update(bytes).digest('hex')}`);
  });

  it('reads directives between statements, and ignores -- emc: text inside string literals that is not on its own line', async () => {
    const catalog = await loadCatalog(
      writeMigrations({
        'a/expand01_idx.sql': "COMMENT ON TABLE t IS 'see -- emc:no-transaction';\n\n-- emc:no-transaction\nCREATE INDEX CONCURRENTLY t_c_idx ON t (c);\n",
      }),
    );
    expect(catalog.steps[0]!.kind).toBe('statement-by-statement');
  });

  it('accepts a batch statement with a WITH clause before it, and a read-only WITH pending query', async () => {
    const catalog = await loadCatalog(
      writeMigrations({
        'a/migrate01_m.sql':
          '-- emc:repeat-until-zero\n-- emc:pending WITH todo AS (SELECT 1 FROM t WHERE c IS NULL) SELECT count(*) FROM todo\n' +
          'WITH todo AS (SELECT id FROM t WHERE c IS NULL LIMIT :batch_size)\nUPDATE t SET c = 1 FROM todo WHERE t.id = todo.id;\n',
      }),
    );
    expect(catalog.steps[0]).toHaveProperty('pendingSql','WITH todo AS (SELECT 1 FROM t WHERE c IS NULL) SELECT count(*) FROM todo');
  });

  it('keeps the release order of releases.json, not the alphabetical one', async () => {
    const catalog = await loadCatalog(
      writeMigrations(
        {
          'alpha/expand01_x.sql': ADD,
          'alpha/contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\n',
          'zeta/contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\n',
          'zeta/expand01_x.sql': ADD,
          'zeta/expand02_y.sql': ADD,
          'zeta/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:pending SELECT count(*) FROM t WHERE c IS NULL\n${KEYSET_UPDATE}`,
        },
        ['zeta', 'alpha'],
      ),
    );
    expect(catalog.releases).toEqual(['zeta', 'alpha']);
    expect(catalog.steps.map((s) => s.id)).toEqual([
      'zeta_expand01',
      'zeta_expand02',
      'zeta_migrate01',
      'zeta_contract01',
      'alpha_expand01',
      'alpha_contract01',
    ]);
  });

  it('ignores README and markdown files in a release folder', async () => {
    const catalog = await loadCatalog(
      writeMigrations({ 'a/README': 'notes', 'a/notes.md': '# notes', 'a/expand01_x.sql': ADD }),
    );
    expect(catalog.steps.map((s) => s.id)).toEqual(['a_expand01']);
  });

  it('checksums the file bytes: one changed byte changes the checksum', async () => {
    const load = async (sql: string) =>
      (await loadCatalog(writeMigrations({ 'a/expand01_x.sql': sql }))).steps[0]!.checksum;
    const original = 'ALTER TABLE t ADD COLUMN c int;\n';
    const a = await load(original);
    expect(a).toBe(`sha256:${createHash('sha256').update(original).digest('hex')}`);
    expect(await load(original)).toBe(a);
    expect(await load('ALTER TABLE t ADD COLUMN d int;\n')).not.toBe(a);
    // Even a change that leaves the statements the same (trailing whitespace) is a change.
    expect(await load('ALTER TABLE t ADD COLUMN c int; \n')).not.toBe(a);
  });

  it('folds the keyset table and key to lower case, as PostgreSQL folds unquoted identifiers', async () => {
    const catalog = await loadCatalog(
      writeMigrations({
        'a/migrate01_m.sql': `-- emc:keyset table=Public.Images key=ID\n-- emc:batch-size 250\n${KEYSET_UPDATE}`,
      }),
    );
    expect(catalog.steps[0]).toMatchObject({
      kind: 'keyset',
      table: { schema: 'public', name: 'images' },
      keys: ['id'],
      batchSize: 250,
      pendingSql: undefined,
    });
  });

  it('accepts an override of the phase lint and reports it with its reason and findings', async () => {
    const catalog = await loadCatalog(
      writeMigrations({
        'a/expand01_x.sql': `-- emc:allow-destructive scratch table created by expand01 of the same release\n${ADD}DROP TABLE scratch;\n`,
        'a/contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\n',
      }),
    );
    const expand = step(catalog, 'a_expand01');
    expect(expand.lintOverride).toEqual({
      reason: 'scratch table created by expand01 of the same release',
      findings: [expect.stringMatching(/^line 3: expand must not drop a table/)],
    });
    expect(expand.statements.map((s) => s.sql)).toEqual(['ALTER TABLE t ADD COLUMN c int', 'DROP TABLE scratch']);
    expect(step(catalog, 'a_contract01').lintOverride).toBeUndefined();
  });

  it('accepts a DO block in expand with an override and its reason, and a function body that deletes', async () => {
    const catalog = await loadCatalog(
      writeMigrations({
        'a/expand01_x.sql':
          '-- emc:allow-destructive the block only creates the role when it is missing\n' +
          "DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'reader') THEN CREATE ROLE reader; END IF; END $$;\n" +
          'CREATE FUNCTION purge() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM t WHERE c IS NULL; END;\n',
      }),
    );
    expect(catalog.steps[0]!.lintOverride).toEqual({
      reason: 'the block only creates the role when it is missing',
      findings: [expect.stringMatching(/^line 2: expand cannot check what a DO block runs/)],
    });
  });

  it('records an emc:no-pending override with its reason, as plan reports it', async () => {
    const catalog = await loadCatalog(
      writeMigrations({
        'a/migrate01_m.sql': `-- emc:keyset table=t key=id\n-- emc:no-pending the old release never writes t\n${KEYSET_UPDATE}`,
        'a/contract01_x.sql': 'ALTER TABLE t DROP COLUMN old;\n',
      }),
    );
    const migrate = step(catalog, 'a_migrate01');
    expect(migrate).toHaveProperty('pendingSql', undefined);
    expect(migrate.lintOverride).toEqual({
      reason: 'the old release never writes t',
      findings: ['no "emc:pending" query: contract does not check that this step left no row to migrate'],
    });
  });

  it('accepts a named CREATE INDEX CONCURRENTLY in a no-transaction step, with its schema', async () => {
    const catalog = await loadCatalog(
      writeMigrations({ 'a/expand01_idx.sql': '-- emc:no-transaction\nCREATE INDEX CONCURRENTLY t_c_idx ON app.t (c);\n' }),
    );
    const [s] = catalog.steps;
    expect(s!.kind).toBe('statement-by-statement');
    expect(s!.statements[0]).toHaveProperty('concurrentIndex', { schema: 'app', name: 't_c_idx' });
  });
});
